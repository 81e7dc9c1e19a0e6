"""sebs-local's Python worker: imports the function once, then serves calls from the agent.

The agent (sebs-agent) starts this file as `python3 -u <code_dir>/handler.py` with the
package root as working directory and speaks JSON lines with it over the process's
stdin/stdout; `sebs_wire::worker` in the Rust sources defines the same messages.

1. The protocol streams are moved off fd 0/1 first, so that a handler's print() (or a
   library writing to fd 1) lands in the container log instead of corrupting the protocol.
2. The worker imports `function.function` and answers one line:
       {"ready": true, "init_time_us": N}
   or  {"ready": false, "error": "...", "type": "...", "traceback": "..."} and exits.
3. For each request line {"request_id": "...", "event": <json>} it calls
   `function.handler(event)` and answers one line:
       {"ok": true, "begin_us": N, "end_us": N, "max_rss_kb": N, "max_rss_reset": B,
        "output": <json>}
   or  {"ok": false, "kind": "handler_error" | "bad_output", "error": "...", "type": "...",
        "traceback": "...", "begin_us": N, "end_us": N}
   begin/end are microseconds since the epoch taken immediately around the handler.
   max_rss_kb is the worker's peak resident set during the call (VmHWM, reset before the
   call by writing "5" to /proc/self/clear_refs) with max_rss_reset true; when the kernel
   refuses the reset, the lifetime peak (ru_maxrss) with max_rss_reset false.
4. End of input means the agent is gone: the worker exits.
"""

import os
import sys


def _protocol_streams():
    # Duplicate the pipes to the agent, then point fd 1 at the log (fd 2) and fd 0 at
    # /dev/null: everything the function prints goes to stderr, and only this module can
    # read requests or write replies.
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = sys.stderr
    return proto_in, proto_out


def _exception_fields(exc):
    import traceback

    return {
        "error": str(exc) or type(exc).__name__,
        "type": type(exc).__name__,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def _rss_meter():
    """Returns (reset_peak, peak_rss): reset_peak() -> whether the peak was reset;
    peak_rss(was_reset) -> (kB, since_reset) or None when nothing is known."""
    try:
        clear_refs = os.open("/proc/self/clear_refs", os.O_WRONLY)
    except OSError:
        clear_refs = None

    def reset_peak():
        # "5" resets the peak resident set (VmHWM) to the current one (Linux >= 4.0).
        if clear_refs is None:
            return False
        try:
            os.write(clear_refs, b"5")
            return True
        except OSError:
            return False

    # Kept open and re-read from offset 0: a third of the cost of opening it per call,
    # which matters on the warm path.
    try:
        status = os.open("/proc/self/status", os.O_RDONLY)
    except OSError:
        status = None

    def vm_hwm_kb():
        if status is None:
            return None
        try:
            data = os.pread(status, 16384, 0)
            at = data.index(b"VmHWM:")
            return int(data[at + 6 : data.index(b"\n", at)].split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def peak_rss(was_reset):
        if was_reset:
            kb = vm_hwm_kb()
            if kb is not None:
                return kb, True
        try:
            import resource

            # ru_maxrss is in kilobytes on Linux.
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, False
        except (ImportError, OSError):
            return None

    return reset_peak, peak_rss


def main():
    proto_in, proto_out = _protocol_streams()

    import json
    import time

    def send(message):
        proto_out.write(message.encode("utf-8") + b"\n")
        proto_out.flush()

    code_dir = os.path.dirname(os.path.abspath(__file__))
    for path in (os.path.join(code_dir, ".python_packages", "lib", "site-packages"), code_dir):
        if path not in sys.path:
            sys.path.insert(0, path)

    start = time.perf_counter_ns()
    try:
        import importlib

        module = importlib.import_module("function.function")
        handler = getattr(module, "handler")
    except BaseException as exc:  # noqa: B036 - any failure of the import is reported
        fields = {"ready": False}
        fields.update(_exception_fields(exc))
        send(json.dumps(fields))
        sys.exit(1)
    init_time_us = (time.perf_counter_ns() - start) // 1000
    send(json.dumps({"ready": True, "init_time_us": init_time_us}))

    reset_peak, peak_rss = _rss_meter()

    while True:
        line = proto_in.readline()
        if not line:
            return
        request = json.loads(line)
        event = request.get("event")
        was_reset = reset_peak()
        begin = time.time_ns() // 1000
        try:
            output = handler(event)
        except BaseException as exc:  # noqa: B036 - sys.exit() in a handler is its error too
            end = time.time_ns() // 1000
            fields = {"ok": False, "kind": "handler_error", "begin_us": begin, "end_us": end}
            fields.update(_exception_fields(exc))
            send(json.dumps(fields))
            continue
        end = time.time_ns() // 1000
        try:
            encoded = json.dumps(output, allow_nan=False)
        except BaseException as exc:  # noqa: B036
            fields = {"ok": False, "kind": "bad_output", "begin_us": begin, "end_us": end}
            fields.update(_exception_fields(exc))
            send(json.dumps(fields))
            continue
        rss = peak_rss(was_reset)
        memory = ""
        if rss is not None:
            memory = '"max_rss_kb": %d, "max_rss_reset": %s, ' % (rss[0], "true" if rss[1] else "false")
        send(
            '{"ok": true, "begin_us": %d, "end_us": %d, %s"output": %s}'
            % (begin, end, memory, encoded)
        )


if __name__ == "__main__":
    main()
