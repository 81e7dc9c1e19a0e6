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
5. The warm path (sebs_wire::handoff): with SEBS_HANDOFF_FDS set, a line
       {"connection": N, "instance": "..."}
   says the agent passed a client connection over the hand-off socket; the worker answers
   its POST / requests itself (the agent's bytes: answers.json), publishing each call in the
   shared state, until the client hangs up, a request it leaves to the agent arrives, or the
   agent asks {"give_back": N}; then it answers {"released": N, "closed": B, "leftover": hex}.
   It holds every connection passed meanwhile too, and serves whichever is readable, until
   it holds none.
"""

import os
import sys


def _protocol_streams():
    # Duplicate the pipes to the agent, then point fd 1 at the log (fd 2) and fd 0 at
    # /dev/null: everything the function prints goes to stderr, and only this module can
    # read requests or write replies.
    proto_in = _Lines(os.dup(0))
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = sys.stderr
    return proto_in, proto_out


class _Lines:
    """Lines from the agent, read from a raw descriptor, so that the hand-off can poll it
    and see whether a whole line is already buffered."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = bytearray()

    def readline(self):
        start = 0
        while True:
            at = self.buf.find(b"\n", start)
            if at >= 0:
                line = bytes(self.buf[: at + 1])
                del self.buf[: at + 1]
                return line
            start = len(self.buf)
            if not self.fill():
                return b""

    def has_line(self):
        return b"\n" in self.buf

    def fill(self):
        # 64 KiB: os.read allocates what it is asked for, and a 1 MiB buffer is an mmap and
        # its page faults on every call (~28 us a line, measured).
        data = os.read(self.fd, 1 << 16)
        self.buf += data
        return bool(data)


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
        # importlib.import_module without importing importlib (~1 ms of the cold start).
        __import__("function.function")
        handler = getattr(sys.modules["function.function"], "handler")
    except BaseException as exc:  # noqa: B036 - any failure of the import is reported
        fields = {"ready": False}
        fields.update(_exception_fields(exc))
        send(json.dumps(fields))
        sys.exit(1)
    init_time_us = (time.perf_counter_ns() - start) // 1000
    send(json.dumps({"ready": True, "init_time_us": init_time_us}))

    reset_peak, peak_rss = _rss_meter()

    def call(event):
        """Runs the handler once: ("ok", begin, end, encoded output, rss) or
        (failure kind, begin, end, exception fields)."""
        was_reset = reset_peak()
        begin = time.time_ns() // 1000
        try:
            output = handler(event)
        except BaseException as exc:  # noqa: B036 - sys.exit() in a handler is its error too
            end = time.time_ns() // 1000
            return "handler_error", begin, end, _exception_fields(exc)
        end = time.time_ns() // 1000
        try:
            encoded = _encode_output(output)
        except BaseException as exc:  # noqa: B036
            return "bad_output", begin, end, _exception_fields(exc)
        return "ok", begin, end, encoded, peak_rss(was_reset)

    fds = os.environ.pop("SEBS_HANDOFF_FDS", None)
    # Made at the first connection, after the cold call: its imports (socket, mmap, random)
    # are no part of a cold start.
    handoff = None

    while True:
        line = proto_in.readline()
        if not line:
            return
        request = json.loads(line)
        if "connection" in request:
            if handoff is None and fds:
                handoff = _Handoff(fds, proto_in, send, call)
            if handoff is None:
                send(json.dumps({"released": request["connection"], "leftover": ""}))
            else:
                handoff.serve(request["connection"], request.get("instance") or None)
            continue
        if "give_back" in request:
            # The connection it names was already given back.
            continue
        outcome = call(request.get("event"))
        kind, begin, end = outcome[0], outcome[1], outcome[2]
        if kind != "ok":
            fields = {"ok": False, "kind": kind, "begin_us": begin, "end_us": end}
            fields.update(outcome[3])
            send(json.dumps(fields))
            continue
        rss = outcome[4]
        memory = ""
        if rss is not None:
            memory = '"max_rss_kb": %d, "max_rss_reset": %s, ' % (rss[0], "true" if rss[1] else "false")
        send(
            '{"ok": true, "begin_us": %d, "end_us": %d, %s"output": %s}'
            % (begin, end, memory, outcome[3])
        )


# The largest request body the agent accepts (sebs_agent::http::MAX_BODY_BYTES); the worker
# gives larger ones back, for the agent's 413.
MAX_BODY_BYTES = 64 * 1024 * 1024
_REASONS = {200: "OK", 500: "Internal Server Error"}
# sebs_wire::handoff::state: where the worker publishes its running call and handler spans.
_SEQ, _BUSY, _ID_LEN, _ID, _ID_MAX, _CONN, _WRITTEN, _RING, _RECORD, _SLOTS = (
    0, 8, 16, 24, 88, 112, 120, 128, 24, 8192
)
_STATE_SIZE = _RING + _RECORD * _SLOTS
# What uuid.UUID(int=..., version=4) clears and sets in a random 128-bit number.
_UUID_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID_SET = (0x8000 << 48) | (4 << 76)


# The codecs of every call, made once: json.dumps and json.loads with options build a new
# encoder or decoder on each call (~5 us of the warm path's ~30 us of Python).
_OUTPUT_ENCODER = None
_STRING_ENCODER = None
_EVENT_DECODER = None


def _codecs():
    global _OUTPUT_ENCODER, _STRING_ENCODER, _EVENT_DECODER
    import json

    # serde_json's encoding of the output: compact, UTF-8, keys sorted.
    _OUTPUT_ENCODER = json.JSONEncoder(
        allow_nan=False, ensure_ascii=False, separators=(",", ":"), sort_keys=True
    ).encode
    _STRING_ENCODER = json.JSONEncoder(ensure_ascii=False).encode
    _EVENT_DECODER = json.JSONDecoder(parse_constant=_reject_constant).decode


def _encode_output(output):
    """The handler's output as the agent writes it back (serde_json): compact, UTF-8, keys
    sorted."""
    if _OUTPUT_ENCODER is None:
        _codecs()
    return _OUTPUT_ENCODER(output)


def _decode_event(body):
    """A request body (bytes or bytearray) as the agent reads it (serde_json): UTF-8 JSON,
    no NaN or Infinity; ValueError otherwise."""
    if _EVENT_DECODER is None:
        _codecs()
    return _EVENT_DECODER(body.decode("utf-8"))


def _micros(us):
    # sebs_wire::EpochMicros's "seconds.micros".
    if us < 0:
        return "-%d.%06d" % divmod(-us, 1000000)
    return "%d.%06d" % divmod(us, 1000000)


def _head_start(status, instance):
    """The head of an answer up to its content length's value, which a connection keeps."""
    head = "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n" % (status, _REASONS[status])
    if instance:
        head += "x-sebs-instance: %s\r\n" % instance
    return (head + "content-length: ").encode("latin-1")


def _head_end(start, date, body):
    """The bytes of an answer: `start` of `_head_start`, `date` as bytes."""
    return b"%s%d\r\ndate: %s\r\n\r\n%s" % (start, len(body), date, body)


def _http_answer(status, instance, date, body):
    """The bytes the agent's HTTP server writes for an answer (sebs_wire::handoff::http_answer)."""
    return _head_end(_head_start(status, instance), date.encode("latin-1"), body)


def _json_string(text):
    # Request ids are mostly ours (hex and dashes) or plain: nothing to escape in those.
    if text.isprintable() and '"' not in text and "\\" not in text:
        return '"%s"' % text
    if _STRING_ENCODER is None:
        _codecs()
    return _STRING_ENCODER(text)


def _success_body(begin, end, request_id, output, agent_time_us, rss):
    """sebs_wire::InvocationAnswer as the agent encodes it, for a warm call; `output` is
    already encoded."""
    if rss is None:
        memory = ""
    else:
        memory = ',"memory_peak_bytes":%d,"memory_source":"%s"' % (
            rss[0] * 1024,
            "process" if rss[1] else "process_lifetime",
        )
    return (
        '{"begin":"%s","end":"%s","request_id":%s,"is_cold":false,"result":{"output":%s},'
        '"init_time_us":0,"agent_time_us":%d%s}'
        % (_micros(begin), _micros(end), _json_string(request_id), output, agent_time_us, memory)
    ).encode("utf-8")


def _failure_body(kind, begin, end, request_id, fields):
    """sebs_wire::ErrorAnswer as the agent encodes it, for a warm call whose handler raised
    or returned something that is not JSON."""
    import json

    answer = {
        "error": "%s: %s" % (fields["type"], fields["error"]),
        "kind": kind,
        "type": fields["type"],
        "traceback": fields["traceback"],
        "request_id": request_id,
        "is_cold": False,
        "begin": _micros(begin),
        "end": _micros(end),
    }
    return json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _http_date(now_s):
    """An HTTP date (email.utils.formatdate(now_s, usegmt=True), whose import costs more
    than the warm call it would serve, and which no locale changes)."""
    import time

    t = time.gmtime(now_s)
    return "%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday],
        t.tm_mday,
        _MONTHS[t.tm_mon - 1],
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )


def _reject_constant(name):
    # NaN and Infinity are not JSON; the agent answers such a body 400.
    raise ValueError(name)


class _Handoff:
    """Serves connections the agent passes over the hand-off socket (sebs_wire::handoff)."""

    def __init__(self, fds, lines, send, call):
        import mmap
        import random
        import socket

        sock_fd, state_fd = (int(f) for f in fds.split(","))
        self.sock = socket.socket(fileno=sock_fd)
        self.state = mmap.mmap(state_fd, _STATE_SIZE)
        os.close(state_fd)
        # The state's words, written in place: a struct.pack_into per field cost ~0.5 us each.
        # The layout is little-endian, as the machine must be (serve() checks).
        self.words = memoryview(self.state).cast("q")
        self.lines, self.send, self.call = lines, send, call
        import select

        self.pollin = select.POLLIN
        self.poller = select.poll()
        self.poller.register(lines.fd, select.POLLIN)
        # The connections held, by descriptor.
        self.conns = {}
        self.seq = 0
        self.written = 0
        self.getrandbits = random.Random().getrandbits
        self.date_second = None
        self.date = b""

    def _http_date(self, now_s):
        if now_s != self.date_second:
            self.date = _http_date(now_s).encode("latin-1")
            self.date_second = now_s
        return self.date

    def _request_id(self, given):
        if given:
            return given
        # A version 4 UUID as uuid.UUID(int=..., version=4) makes it, without the object.
        h = "%032x" % (self.getrandbits(128) & _UUID_CLEAR | _UUID_SET)
        return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])

    def _publish_busy(self, since_us, request_id, number):
        rid = request_id.encode("utf-8")[:_ID_MAX]
        words = self.words
        self.seq += 1
        words[_SEQ // 8] = self.seq
        words[_BUSY // 8] = since_us
        words[_CONN // 8] = number
        words[_ID_LEN // 8] = len(rid)
        self.state[_ID : _ID + len(rid)] = rid
        self.seq += 1
        words[_SEQ // 8] = self.seq

    def _publish_done(self, begin, end, ok):
        words = self.words
        at = (_RING + _RECORD * (self.written % _SLOTS)) // 8
        words[at] = begin
        words[at + 1] = end
        words[at + 2] = 1 if ok else 0
        self.written += 1
        self.seq += 1
        words[_SEQ // 8] = self.seq
        words[_BUSY // 8] = 0
        words[_WRITTEN // 8] = self.written
        self.seq += 1
        words[_SEQ // 8] = self.seq

    def _release(self, conn, closed=False):
        import json

        self.poller.unregister(conn.fd)
        del self.conns[conn.fd]
        leftover = b"" if closed else bytes(conn.buf)
        try:
            conn.sock.close()
        finally:
            self.send(json.dumps({"released": conn.number, "closed": closed, "leftover": leftover.hex()}))

    def _take(self, number, instance):
        """Receives connection `number`'s descriptor and holds it."""
        import socket

        fds = []
        try:
            # recvmsg rather than socket.recv_fds, which Python 3.7 and 3.8 lack.
            _, ancillary, _, _ = self.sock.recvmsg(1, socket.CMSG_LEN(4))
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS and len(data) >= 4:
                    fds.append(int.from_bytes(data[:4], sys.byteorder))
        except OSError:
            pass
        if not fds or sys.byteorder != "little":
            # The shared state is little-endian words (see __init__): a big-endian worker
            # leaves every connection to the agent.
            for fd in fds:
                os.close(fd)
            self.send('{"released": %d, "closed": false, "leftover": ""}' % number)
            return
        sock = socket.socket(fileno=fds[0])
        sock.setblocking(True)
        conn = _Held(number, sock, instance)
        self.conns[conn.fd] = conn
        self.poller.register(conn.fd, self.pollin)

    def _messages(self):
        """Acts on the agent's lines already read: connections passed and asked back."""
        import json

        while self.lines.has_line():
            message = json.loads(self.lines.readline())
            if "connection" in message:
                self._take(message["connection"], message.get("instance") or None)
            elif "give_back" in message:
                number = message["give_back"]
                for conn in list(self.conns.values()):
                    if conn.number == number:
                        self._release(conn)

    def serve(self, number, instance):
        """Holds connection `number` and every one passed meanwhile, serving whichever is
        readable (in poll order), until it holds none."""
        self._take(number, instance)
        self._messages()
        lines_fd = self.lines.fd
        while self.conns:
            for fd, _ in self.poller.poll():
                if fd == lines_fd:
                    if not self.lines.fill():
                        # The agent is gone.
                        sys.exit(0)
                    self._messages()
                    # A connection passed now may have the number of one released now:
                    # this round's other events are stale (the sockets block); poll again.
                    break
                conn = self.conns.get(fd)
                if conn is not None:
                    self._readable(conn)

    def _readable(self, conn):
        """Reads what `conn` sent and serves the requests it completes."""
        import time

        try:
            data = conn.sock.recv(1 << 16)
        except OSError:
            # The client reset the connection: nothing to give back.
            return self._release(conn, closed=True)
        if not data:
            return self._release(conn, closed=not conn.buf)
        buf = conn.buf
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            last = conn.last_head
            if last is not None and end == len(last) and buf.startswith(last):
                head = conn.last_parsed
            else:
                conn.last_head = bytes(buf[:end])
                head = conn.last_parsed = _simple_post(conn.last_head)
            if head is None:
                return self._release(conn)
            length, given_id = head
            need = end + 4 + length
            if len(buf) < need:
                # The rest of the body comes in a later read.
                return
            received_ns = time.perf_counter_ns()
            try:
                event = _decode_event(buf[end + 4 : need])
            except ValueError:
                # Not JSON (nor UTF-8): the agent writes its 400.
                return self._release(conn)
            request_id = self._request_id(given_id)
            self._publish_busy(time.time_ns() // 1000, request_id, conn.number)
            outcome = self.call(event)
            kind, begin, finish = outcome[0], outcome[1], outcome[2]
            if kind == "ok":
                agent_time_us = (time.perf_counter_ns() - received_ns) // 1000
                body = _success_body(begin, finish, request_id, outcome[3], agent_time_us, outcome[4])
                status = 200
            else:
                body = _failure_body(kind, begin, finish, request_id, outcome[3])
                status = 500
            self._publish_done(begin, finish, kind == "ok")
            answer = _head_end(conn.heads[status], self._http_date(int(time.time())), body)
            del buf[:need]
            try:
                conn.sock.sendall(answer)
            except OSError:
                return self._release(conn, closed=True)


class _Held:
    """A connection a worker holds: what it read of it, and the head it last parsed."""

    __slots__ = ("number", "sock", "fd", "buf", "heads", "last_head", "last_parsed")

    def __init__(self, number, sock, instance):
        self.number, self.sock, self.fd = number, sock, sock.fileno()
        self.buf = bytearray()
        self.heads = {200: _head_start(200, instance), 500: _head_start(500, instance)}
        # A client sends the same head call after call: the last one parsed is kept.
        self.last_head, self.last_parsed = None, None


def _simple_post(head):
    """(content length, x-request-id or None) of a request head the worker serves itself,
    None for anything it leaves to the agent."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        return None
    lines = text.split("\r\n")
    if lines[0] != "POST / HTTP/1.1":
        return None
    length = None
    request_id = None
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip(" \t"):
            return None
        name = name.lower()
        value = value.strip(" \t")
        if name == "content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif name in ("transfer-encoding", "expect", "upgrade"):
            return None
        elif name == "connection" and "keep-alive" != value.lower():
            return None
        elif name == "x-request-id":
            if any(not (32 <= ord(c) < 127 or c == "\t") for c in value):
                value = ""
            request_id = value or None
    if length is None or length > MAX_BODY_BYTES:
        return None
    return length, request_id


if __name__ == "__main__":
    main()
