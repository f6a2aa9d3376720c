"""`python -m mlserver_rs_worker <socket>`: connects to the server and
serves its calls until the socket closes."""

import asyncio
import os
import signal
import sys
import threading
import time

from .connection import main


def _exit_when_orphaned(parent: int) -> None:
    # The server may die without closing our socket cleanly (SIGKILL with a
    # predict running here): never outlive it.
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.5)


if __name__ == "__main__":
    threading.Thread(
        target=_exit_when_orphaned, args=(os.getppid(),), daemon=True
    ).start()
    # Like MLServer's workers: the parent manages shutdown; Ctrl-C in a
    # terminal must not kill the workers before the server drains them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import uvloop  # MLServer's own dependency: the same loop as MLServer

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(sys.argv[1]))
