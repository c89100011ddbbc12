//! Sysctl values as text: normalising what the kernel reads back and comparing it with what a
//! profile wants. The kernel prints `32768\t60999` for a value written as `32768 60999`, and
//! merges and sorts port lists; comparison happens on the normal form. Never performs I/O.

use crate::profile::keys::Shape;

/// Whitespace runs become one space; leading and trailing whitespace goes.
#[must_use]
pub fn normalise(raw: &str) -> String {
    raw.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The normal form of a value of the given shape. Port lists are parsed, sorted and merged the
/// way the kernel prints them (`9000-9010,8080` reads back as `8080,9000-9010`).
#[must_use]
pub fn normal_form(shape: Option<Shape>, raw: &str) -> String {
    if shape == Some(Shape::PortList)
        && let Ok(ranges) = parse_port_list(raw)
    {
        return format_port_list(&ranges);
    }
    normalise(raw)
}

/// The normal form of a value of `key`, by the key's catalogued shape.
#[must_use]
pub fn of_key(key: &str, raw: &str) -> String {
    normal_form(crate::profile::keys::known(key).map(|k| k.shape), raw)
}

/// Whether two texts are the same value of `key` (after whitespace and port-list
/// normalisation): what read-back checks, plans and rollbacks compare.
#[must_use]
pub fn same(key: &str, a: &str, b: &str) -> bool {
    of_key(key, a) == of_key(key, b)
}

/// Parses `8080,9000-9010` (spaces allowed) into sorted, merged inclusive ranges.
pub fn parse_port_list(raw: &str) -> Result<Vec<(u16, u16)>, String> {
    let mut ranges = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (parse_port(a)?, parse_port(b)?),
            None => {
                let p = parse_port(item)?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(format!(
                "port range {item:?} runs backwards; write {hi}-{lo}"
            ));
        }
        ranges.push((lo, hi));
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::new();
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    Ok(merged)
}

fn parse_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(u16::try_from(p).unwrap_or(u16::MAX)),
        _ => Err(format!("{:?} is not a port (1-65535)", s.trim())),
    }
}

#[must_use]
pub fn format_port_list(ranges: &[(u16, u16)]) -> String {
    ranges
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether `port` lies in one of `ranges`.
#[must_use]
pub fn port_in(ranges: &[(u16, u16)], port: u16) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= port && port <= hi)
}

/// Checks a profile value against a key's shape; the error says what was expected.
pub fn check_shape(shape: Shape, value: &str) -> Result<(), String> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let all_ints = fields.iter().all(|f| f.parse::<i64>().is_ok());
    match shape {
        Shape::Int if fields.len() == 1 && all_ints => Ok(()),
        Shape::Int => Err(format!("expects one integer, got {value:?}")),
        Shape::Ints(n) if fields.len() == n && all_ints => Ok(()),
        Shape::Ints(n) => Err(format!(
            "expects {n} integers separated by spaces, got {value:?}"
        )),
        Shape::PortList => parse_port_list(value).map(|_| ()),
        Shape::Text => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        let cases: &[(Option<Shape>, &str, &str)] = &[
            (None, "32768\t60999", "32768 60999"),
            (None, "  4096 87380   6291456\n", "4096 87380 6291456"),
            (None, "\n", ""),
            (Some(Shape::PortList), "9000-9010,8080", "8080,9000-9010"),
            (Some(Shape::PortList), "8080, 8081,8082", "8080-8082"),
            (Some(Shape::PortList), "", ""),
            (Some(Shape::PortList), "1-5,3-9", "1-9"),
            (Some(Shape::Text), "bbr\n", "bbr"),
        ];
        for (shape, raw, want) in cases {
            assert_eq!(normal_form(*shape, raw), *want, "{raw:?}");
        }
    }

    #[test]
    fn shapes() {
        assert!(check_shape(Shape::Int, "65535").is_ok());
        assert!(check_shape(Shape::Int, "a").is_err());
        assert!(check_shape(Shape::Ints(3), "1 2 3").is_ok());
        assert!(check_shape(Shape::Ints(3), "1 2").is_err());
        assert!(check_shape(Shape::PortList, "8080,9000-9010").is_ok());
        assert!(check_shape(Shape::PortList, "70000").is_err());
        assert!(check_shape(Shape::PortList, "10-5").is_err());
    }
}
