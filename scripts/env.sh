# Settings shared by the scripts (sourced). Override any of them in the
# environment.
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
# Python tools of the tests (an independent FIPS 203/204 implementation for
# the vector check), in a virtual environment outside the clone.
APG_PQ_VENV=${APG_PQ_VENV:-/var/tmp/apg_pqcrypto-venv}

# The scripts run as root: they install packages, install the extension
# into the system PostgreSQL, and start clusters as the postgres user.
require_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "$(basename "$0"): run as root (it installs packages and the extension, and runs clusters as the postgres user)" >&2
    exit 1
  fi
}
