"""`./scripts/run`: the whole stack on one machine, from the Procfile.

With DATABASE_URL and CELERY_BROKER_URL set it uses those servers; with either unset it
starts the embedded one with its data in ./var (or WEBHOOKS_DATA_DIR), kept across
restarts. While it runs, the servers' URLs are in `stack.env` there, where the CLI of
another terminal finds them (webhooks_api.stack_file). A RabbitMQ broker without
WEBHOOKS_REDIS_URL gets the embedded Redis for the circuit breaker, the rate limit and
the in-flight window (the worker refuses to run them without one). Then it applies the
migrations and runs web, `WORKER_PROCESSES` workers (default: one per core), beat and
flower under honcho until Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from webhooks_api import stack_file
from webhooks_api.config import load_settings, protections_without_redis

from . import require_extra
from .embedded import RedisServer, ensure_database, start_postgres

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = ("web", "worker", "beat", "flower")


def main() -> int:
    env = dict(os.environ)
    data_dir = Path(env.get("WEBHOOKS_DATA_DIR", stack_file.DEFAULT_DATA_DIR))
    redis = None
    if not env.get("DATABASE_URL"):
        server_url = start_postgres(data_dir / "pgdata")
        env["DATABASE_URL"] = ensure_database(server_url, "webhooks")
        print(f"embedded PostgreSQL running, data in {data_dir / 'pgdata'}", flush=True)
    if not env.get("CELERY_BROKER_URL") or protections_without_redis(load_settings(env)):
        redis = RedisServer(data_dir / "redis", port=int(env.get("REDIS_PORT", "6389"))).start()
        env["WEBHOOKS_REDIS_URL" if env.get("CELERY_BROKER_URL") else "CELERY_BROKER_URL"] = \
            redis.url
        print(f"embedded Redis running on {redis.url}, data in {data_dir / 'redis'}", flush=True)
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        # One directory for web and worker: /metrics adds up all their processes. Emptied
        # at each start, as prometheus_client's multiprocess mode requires.
        metrics_dir = data_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    port, flower_port = env.setdefault("PORT", "8000"), env.setdefault("FLOWER_PORT", "5555")
    try:
        subprocess.run([str(bin_dir / "flask"), "--app", "webhooks_api", "db", "upgrade"],
                       env=env, check=True, cwd=ROOT)
        stack_file.write(env)
        print(f"""
  API        http://127.0.0.1:{port}/api/v1/webhooks
  API docs   http://127.0.0.1:{port}/docs   (OpenAPI: /openapi.json)
  Console    http://127.0.0.1:{port}/console   (sign in with an API key)
  Flower     http://127.0.0.1:{flower_port}
  Metrics    http://127.0.0.1:{port}/metrics   (health: /healthz, /readyz)
  Settings   {stack_file.path(env)}   (read by `flask --app webhooks_api ...`)
  API key    . .venv/bin/activate && flask --app webhooks_api tenants create acme --with-key
  Listen     flask --app webhooks_api listen acme   (prints each delivery, verified)
  Stop       Ctrl-C
""", flush=True)
        # Worker processes are the process manager's: one per core unless WORKER_PROCESSES.
        worker_processes = env.get("WORKER_PROCESSES") or str(os.cpu_count() or 1)
        honcho = subprocess.Popen([str(bin_dir / "honcho"), "-f", str(ROOT / "Procfile"),
                                   "start", "-c", f"worker={worker_processes}", *PROCESSES],
                                  env=env, cwd=ROOT)
        try:
            return honcho.wait()
        except KeyboardInterrupt:
            honcho.send_signal(signal.SIGINT)
            return honcho.wait()
    finally:
        stack_file.remove(env)
        if redis is not None:
            redis.stop()


if __name__ == "__main__":
    require_extra()
    sys.exit(main())
