"""gunicorn settings for running a microwsgi app in production.

Use it as ``gunicorn -c deploy/gunicorn.conf.py app:server`` (the app module is given on the command
line, or by ``MICROWSGI_APP``). Every value below can be changed without editing this file, through
the environment variable named next to it, and anything given on gunicorn's command line wins over
this file. The values are chosen for an app behind nginx on the same host (deploy/nginx.conf).
"""

import atexit
import glob
import multiprocessing
import os
import shutil
import signal
import tempfile


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


# The app to serve when none is given on the command line (gunicorn's own `wsgi_app` setting).
wsgi_app = os.environ.get("MICROWSGI_APP") or None

# Loopback by default: nginx on the same host is the only client. In a container or on an app host
# behind a separate load balancer, bind the private interface instead (the Dockerfile sets 0.0.0.0).
# Under systemd socket activation (deploy/microwsgi-app.socket) gunicorn uses the inherited socket
# and this value is ignored.
bind = [os.environ.get("MICROWSGI_BIND", "127.0.0.1:8000")]

# The worker class, from one variable:
# - "sync" (the default): one request per process at a time, the most predictable behind nginx,
#   which buffers slow clients so a process is never tied up by one; no keep-alive to nginx.
# - "gthread": threads per process and kept-alive connections, gunicorn's own HTTP code; for apps
#   that wait on other services, and for what only it does (TLS in gunicorn, HTTP/2).
# - "microwsgi.workers.Worker": microwsgi's HTTP engine in gunicorn's processes; threads per
#   process, kept-alive connections that hold no thread while idle, the most requests per CPU.
#   It refuses TLS settings at boot and warns about the settings it ignores (docs/production.md).
# deploy/README.md says more about when to pick which.
_MICROWSGI_WORKER = "microwsgi.workers.Worker"
worker_class = os.environ.get("MICROWSGI_WORKER_CLASS") or "sync"
threads = _env_int("MICROWSGI_THREADS", {"gthread": 4, _MICROWSGI_WORKER: 8}.get(worker_class, 1))

# The classic 2 x CPUs + 1 for the sync and gthread workers: while one process waits on I/O
# another one has the CPU. microwsgi's worker keeps a process busy with its threads, so one per
# CPU. WEB_CONCURRENCY is the name gunicorn and most hosting platforms already use for this.
_cpus = multiprocessing.cpu_count()
workers = _env_int("WEB_CONCURRENCY", _cpus if worker_class == _MICROWSGI_WORKER else _cpus * 2 + 1)

# A worker silent for this long is killed and replaced: it is stuck, and a stuck worker serves no
# one. Keep it above the slowest legitimate request and below nginx's proxy_read_timeout (60 s).
timeout = _env_int("MICROWSGI_TIMEOUT", 30)

# On SIGTERM or a reload, workers get this long to finish the requests in flight. The systemd
# unit's TimeoutStopSec is a little longer, so systemd never kills a shutdown that is on time.
graceful_timeout = _env_int("MICROWSGI_GRACEFUL_TIMEOUT", 30)

# Idle keep-alive connections (gthread and microwsgi's worker; sync closes after each answer).
# Longer than nginx's upstream keepalive_timeout (60 s) so that nginx, not gunicorn, closes an
# idle connection: otherwise nginx may send a request on a socket gunicorn is just closing.
keepalive = _env_int("MICROWSGI_KEEPALIVE", 65)

# Replace each worker after about this many requests, so a slow leak in the app (or a library)
# cannot grow without bound. The jitter keeps all workers from restarting at the same moment.
max_requests = _env_int("MICROWSGI_MAX_REQUESTS", 1000)
max_requests_jitter = _env_int("MICROWSGI_MAX_REQUESTS_JITTER", 100)

# Who may set X-Forwarded-Proto (and so make a request https) and the other forwarded headers
# gunicorn reads itself: nginx on this host. Behind a load balancer on another machine, put its
# address here. The app's own `Server(trusted_proxies=N)` decides about X-Forwarded-For/Host.
forwarded_allow_ips = os.environ.get("MICROWSGI_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Access log on stdout (journald or `docker logs` collect it), errors on stderr. %(M)s is the
# request time in milliseconds, the figure to watch; the forwarded-for header names the real
# client, since the peer address %(h)s is nginx's.
accesslog = os.environ.get("MICROWSGI_ACCESS_LOG", "-")
errorlog = os.environ.get("MICROWSGI_ERROR_LOG", "-")
loglevel = os.environ.get("MICROWSGI_LOG_LEVEL", "info")
access_log_format = (
    '%(h)s "%({x-forwarded-for}i)s" %(t)s "%(r)s" %(s)s %(B)s %(M)sms "%(f)s" "%(a)s"'
)

# Workers signal that they are alive through a temporary file; on a container's overlay
# filesystem such writes can block, so use memory when it is there.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# Not preloaded: each worker imports the app itself, so `kill -HUP` (systemctl reload) picks up
# new code. Set MICROWSGI_PRELOAD=1 to import once in the master and share memory instead.
preload_app = os.environ.get("MICROWSGI_PRELOAD", "") == "1"

# gunicorn 25.1 and later open a control socket for `gunicornc`, by default in ~/.gunicorn/: a
# path every gunicorn of the same user shares (a second instance takes it over) and that the
# systemd unit's ProtectHome makes unwritable. Off unless a path of its own is given, such as the
# /run/microwsgi-app/gunicorn.ctl that deploy/microwsgi-app.service sets up. (Older gunicorn
# ignores both settings.)
control_socket = os.environ.get("MICROWSGI_CONTROL_SOCKET", "")
control_socket_disable = not control_socket

# Metrics across workers. server.metrics() counts in each worker; prometheus_client's
# multiprocess mode lets one scrape, whichever worker answers it, add up every worker's counts,
# kept in files in the directory PROMETHEUS_MULTIPROC_DIR names. It must be set before the app
# imports prometheus_client: here, in the master, so every worker inherits it. Unless it is
# given, it is a new directory under $TMPDIR (/tmp by default: writable by any user, and one per
# gunicorn, so two on one host never mix their counts), kept across reloads (`kill -HUP` reads
# this file again in the same process) and removed when the master exits. A master started by
# `kill -USR2` makes its own rather than share its parent's, which removes its own on exit.
_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_METRICS_DIR_OWNER = "MICROWSGI_METRICS_DIR_OWNER"  # the pid of the master that made it
_owner = os.environ.get(_METRICS_DIR_OWNER)
if not os.environ.get(_METRICS_DIR) or (_owner is not None and _owner != str(os.getpid())):
    _made = tempfile.mkdtemp(prefix="microwsgi-metrics-")
    os.environ[_METRICS_DIR], os.environ[_METRICS_DIR_OWNER] = _made, str(os.getpid())

    def _remove_metrics_dir(path: str = _made, owner: int = os.getpid()) -> None:
        if os.getpid() == owner:  # not in a worker, which inherits the exit handler
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(_remove_metrics_dir)


# A stop signal that reaches a worker between its fork and the moment it installs its own
# handlers (gunicorn's init_process) runs the master's handlers it was forked with, and is lost:
# that worker serves on until graceful_timeout and is killed, so the whole stop takes
# graceful_timeout, and `docker stop` with no longer a timeout kills gunicorn (exit 137). It
# happens whenever the stop comes while a worker boots: at start, or as max_requests replaces
# one. Blocked in the master across the fork, the signal waits in the new worker instead, until
# its handlers exist (post_worker_init), and then stops it at once.
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}


def _unblock_stop_signals() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def on_starting(server):
    # Counts an earlier gunicorn left in a directory given to this one would be added to its own.
    for stale in glob.glob(os.path.join(os.environ[_METRICS_DIR], "*.db")):
        os.remove(stale)
    # Once per master (a reload reads this file again, but calls on_reload instead).
    os.register_at_fork(after_in_parent=_unblock_stop_signals)


def pre_fork(server, worker):
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)


def post_worker_init(worker):
    _unblock_stop_signals()


def child_exit(server, worker):
    # A worker that is gone must leave the in-progress gauge's sum; its counts stay in the total.
    try:
        from prometheus_client import multiprocess
    except ImportError:  # the `metrics` extra is not installed: nothing to mark
        return
    multiprocess.mark_process_dead(worker.pid)
