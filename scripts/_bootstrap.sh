# Shared set-up steps for scripts/test, scripts/demo and bench/run (sourced, not run).

bootstrap_python() {
    # $1: the extras to install, e.g. "test" or "sql"
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$1]"
}

bootstrap_js_clients() {
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    bootstrap_demo_clients
}

# The socket.io-client the demo serves itself (no CDN: the demo works offline).
bootstrap_demo_clients() {
    if ! command -v npm >/dev/null 2>&1; then
        echo "the demo needs Node 18+ with npm for socket.io-client (apt-get install nodejs npm)" >&2
        return 1
    fi
    if [ ! -d demo/js/node_modules ] || [ demo/js/package-lock.json -nt demo/js/node_modules ]; then
        (cd demo/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
}

bootstrap_chromium() {
    if ! command -v chromium >/dev/null 2>&1; then
        echo "installing Debian's chromium for the browser tests" >&2
        if [ "$(id -u)" -eq 0 ]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
        else
            sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
        fi
    fi
}

bootstrap_nginx() {
    # docs/deployment.rst's nginx configuration is run by tests/test_deployment.py
    if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
        echo "installing Debian's nginx-light for the deployment test" >&2
        if [ "$(id -u)" -eq 0 ]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
        else
            sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
        fi
    fi
}

bootstrap_services() {
    if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        echo "starting redis on 127.0.0.1:6379" >&2
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
            --dir /tmp --logfile /tmp/flask-feathers-redis.log
        for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
    fi
    if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -q; then
        echo "starting postgresql" >&2
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    fi
    bootstrap_mariadb
}

# MariaDB (or MySQL) on 127.0.0.1:3306, root without a password, database `test`: the SQLService
# tests and the adapter conformance suite run on it (they skip, saying why, when it is absent).
bootstrap_mariadb() {
    command -v mysqladmin >/dev/null 2>&1 || return 0
    local ping=(mysqladmin -h 127.0.0.1 -P 3306 -u root --connect-timeout=2 ping)
    if ! "${ping[@]}" >/dev/null 2>&1; then
        echo "starting mariadb" >&2
        service mariadb start >/dev/null 2>&1 || service mysql start >/dev/null 2>&1 \
            || (mysqld_safe --bind-address=127.0.0.1 >/tmp/flask-feathers-mariadb.log 2>&1 &)
        for _ in $(seq 100); do "${ping[@]}" >/dev/null 2>&1 && break; sleep 0.2; done
    fi
    mysql -h 127.0.0.1 -P 3306 -u root -e 'CREATE DATABASE IF NOT EXISTS test' >/dev/null 2>&1 || true
}
