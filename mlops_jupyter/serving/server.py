"""Running the app on uvicorn: in the foreground (`mlops serve`) or on a thread (`%mlops serve`)."""

import socket
import threading
import time

from ..errors import InvalidInput, MlopsError
from .app import DEFAULT_MAX_BODY_BYTES, ServingApp

START_TIMEOUT_SECONDS = 30


def _config(state, host, port):
    import uvicorn

    # No access log: the request log records every request, and a log line per request would halve throughput.
    return uvicorn.Config(state.app, host=host, port=port, log_level="info", access_log=False)


def _check_port_free(host, port):
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise InvalidInput(f"cannot listen on {host}:{port}: {error.strerror}") from None


def serve(env, *, host="127.0.0.1", port=8000, max_body_bytes=DEFAULT_MAX_BODY_BYTES):
    """Serve ``env`` of the current registry until interrupted (Ctrl-C flushes the request log)."""
    import uvicorn

    _check_port_free(host, port)
    uvicorn.Server(_config(ServingApp(env, max_body_bytes=max_body_bytes), host, port)).run()


class BackgroundServer:
    """The server on a daemon thread of this process (a Jupyter kernel): ``start()``, ``stop()``."""

    def __init__(self, env, *, host="127.0.0.1", port=8000, max_body_bytes=DEFAULT_MAX_BODY_BYTES):
        self.state = ServingApp(env, max_body_bytes=max_body_bytes)
        self.host, self.port = host, port
        self._server = None
        self._thread = None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def start(self):
        import uvicorn

        _check_port_free(self.host, self.port)
        self._server = uvicorn.Server(_config(self.state, self.host, self.port))
        self._thread = threading.Thread(target=self._server.run, name="mlops-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise MlopsError(f"the server did not start on {self.url}; see the log above")
            time.sleep(0.01)
        return self

    def stop(self):
        """Stop serving; returns once every recorded request is written."""
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join()
            self._server = None
