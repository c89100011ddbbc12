# Stand-in for ansible-test's pip bootstrap script (get-pip.py from
# ci-files.testing.ansible.com, which CI cannot reach: only the package registries are).
# ansible-test runs it with the venv's python as `get-pip.py [pip options] pip==X [setuptools]
# [wheel] [--no-setuptools] [--no-wheel]`; this bootstraps pip with the standard library's
# ensurepip, then installs the requested packages from PyPI, which is what get-pip.py does.
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
