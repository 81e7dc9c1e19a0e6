// sebs-local's Node.js worker: requires the function once, then serves calls from the agent.
//
// The twin of wrappers/python/handler.py. The agent (sebs-agent) starts this file as
// `node <code_dir>/handler.js` with the package root as working directory and speaks JSON
// lines with it over the process's stdin/stdout; `sebs_wire::worker` in the Rust sources
// defines the same messages.
//
// 1. The protocol streams are moved off fd 0/1 first, so that a handler's console.log (or a
//    library writing to fd 1) lands in the container log instead of corrupting the protocol.
//    Node cannot dup2, so the pipes are reopened through /proc/self/fd and fd 1 is re-pointed
//    at the log by closing it and opening the log again (open takes the lowest free fd); the
//    agent makes its pipes the worker user's so that this works for any CONTAINER_UID. Where
//    the log cannot be reopened, fd 1 becomes /dev/null and process.stdout the log; where the
//    pipes cannot (an older agent, another user), process.stdout is the log and replies go to
//    fd 1 as they are.
// 2. The worker requires `./function/function` (its node_modules are found at the package
//    root by Node's usual lookup) and answers one line:
//        {"ready": true, "init_time_us": N}
//    or  {"ready": false, "error": "...", "type": "...", "traceback": "..."} and exits.
// 3. For each request line {"request_id": "...", "event": <json>} it awaits
//    `handler(event)` (async or not) and answers one line:
//        {"ok": true, "begin_us": N, "end_us": N, "max_rss_kb": N, "max_rss_reset": B,
//         "output": <json>}
//    or  {"ok": false, "kind": "handler_error" | "bad_output", "error": "...", "type": "...",
//         "traceback": "...", "begin_us": N, "end_us": N}
//    begin/end are microseconds since the epoch taken immediately around the handler.
//    max_rss_kb is the worker's peak resident set during the call (VmHWM, reset before the
//    call by writing "5" to /proc/self/clear_refs) with max_rss_reset true; when the kernel
//    refuses the reset, the lifetime peak (process.resourceUsage().maxRSS) with false.
// 4. End of input means the agent is gone: the worker exits.
'use strict';

const fs = require('fs');
const path = require('path');
const { performance } = require('perf_hooks');

// Reopens fd `fd` through /proc, giving a new descriptor of the same pipe or file.
function reopen(fd, flags) {
  return fs.openSync('/proc/self/fd/' + fd, flags);
}

// Opens `file` so that it becomes fd `fd`, which must be free: open takes the lowest free fd.
function openAs(fd, file, flags) {
  const got = fs.openSync(file, flags);
  if (got !== fd) {
    fs.closeSync(got);
    throw new Error('fd ' + fd + ' was not the lowest free descriptor');
  }
}

function stdoutIsStderr() {
  Object.defineProperty(process, 'stdout', {
    configurable: true,
    enumerable: true,
    get() {
      return process.stderr;
    },
  });
}

function protocolStreams() {
  let input = 0;
  try {
    input = reopen(0, 'r');
    fs.closeSync(0);
    openAs(0, '/dev/null', 'r');
  } catch (e) {
    // Requests keep coming on fd 0 (or on the reopened pipe, if only /dev/null failed).
  }
  let output = 1;
  try {
    output = reopen(1, 'a');
  } catch (e) {
    // fd 1 stays the pipe to the agent: JavaScript's stdout goes to the log instead.
    stdoutIsStderr();
    return { input, output: 1 };
  }
  fs.closeSync(1);
  try {
    openAs(1, '/proc/self/fd/2', 'a');
  } catch (e) {
    // The log cannot be reopened (it belongs to another user): what is written to fd 1 is
    // lost rather than mixed into the protocol, and JavaScript's stdout goes to the log.
    try {
      openAs(1, '/dev/null', 'w');
    } catch (e2) {
      // fd 1 stays closed; writes to it fail with EBADF.
    }
    stdoutIsStderr();
  }
  return { input, output };
}

function writeAll(fd, text) {
  const buffer = Buffer.from(text, 'utf8');
  let offset = 0;
  while (offset < buffer.length) {
    try {
      offset += fs.writeSync(fd, buffer, offset, buffer.length - offset);
    } catch (e) {
      if (e.code !== 'EAGAIN') {
        throw e;
      }
      // A non-blocking pipe is full: wait a moment for the agent to read.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

function exceptionFields(err) {
  let type = typeof err;
  let message = String(err);
  let traceback = message;
  if (err !== null && (typeof err === 'object' || typeof err === 'function')) {
    const name = typeof err.name === 'string' && err.name ? err.name : '';
    const ctor = err.constructor && typeof err.constructor.name === 'string' ? err.constructor.name : '';
    // A subclass that does not set `name` still says Error: its class name is more telling.
    type = (name === 'Error' && ctor && ctor !== 'Object' ? ctor : name || ctor) || 'Error';
    message = typeof err.message === 'string' ? err.message : safeString(err);
    traceback = typeof err.stack === 'string' ? err.stack : safeString(err);
  }
  return { error: message || type, type, traceback };
}

function safeString(value) {
  try {
    return String(value);
  } catch (e) {
    return Object.prototype.toString.call(value);
  }
}

// Microseconds since the epoch: the monotonic clock anchored at the process's time origin.
function nowUs() {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

function rssMeter() {
  let clearRefs = null;
  try {
    clearRefs = fs.openSync('/proc/self/clear_refs', 'w');
  } catch (e) {
    clearRefs = null;
  }

  // "5" resets the peak resident set (VmHWM) to the current one (Linux >= 4.0).
  function resetPeak() {
    if (clearRefs === null) {
      return false;
    }
    try {
      fs.writeSync(clearRefs, '5');
      return true;
    } catch (e) {
      return false;
    }
  }

  // Kept open and re-read from offset 0, cheaper than opening it on every call.
  let status;
  try {
    status = fs.openSync('/proc/self/status', 'r');
  } catch (e) {
    status = null;
  }
  const statusBuffer = Buffer.alloc(16384);

  function vmHwmKb() {
    if (status === null) {
      return null;
    }
    try {
      const n = fs.readSync(status, statusBuffer, 0, statusBuffer.length, 0);
      const match = /^VmHWM:\s*(\d+)/m.exec(statusBuffer.toString('latin1', 0, n));
      return match ? Number(match[1]) : null;
    } catch (e) {
      return null;
    }
  }

  function peakRss(wasReset) {
    if (wasReset) {
      const kb = vmHwmKb();
      if (kb !== null) {
        return { kb, reset: true };
      }
    }
    try {
      // maxRSS is in kilobytes.
      return { kb: process.resourceUsage().maxRSS, reset: false };
    } catch (e) {
      return null;
    }
  }

  return { resetPeak, peakRss };
}

// Encodes a handler's return value, or throws as JSON.stringify does (BigInt, cycles).
// Returning nothing is null, as Python's None; a bare function or symbol is no JSON.
function encodeOutput(output) {
  if (output === undefined) {
    return 'null';
  }
  const encoded = JSON.stringify(output);
  if (encoded === undefined) {
    throw new TypeError('the handler returned a ' + typeof output + ', which is not JSON serializable');
  }
  return encoded;
}

// Calls `onLine(buffer)` for every `\n`-terminated line of the stream, one at a time: the
// next line waits until the promise of the previous one settles.
function readLines(stream, onLine, onEnd) {
  let pending = [];
  let queue = [];
  let busy = false;
  let ended = false;

  function pump() {
    if (busy) {
      return;
    }
    const line = queue.shift();
    if (line === undefined) {
      if (ended) {
        onEnd();
      }
      return;
    }
    busy = true;
    Promise.resolve(onLine(line)).then(
      () => {
        busy = false;
        pump();
      },
      (err) => {
        process.stderr.write('sebs-local worker: ' + exceptionFields(err).traceback + '\n');
        process.exit(1);
      },
    );
  }

  stream.on('data', (chunk) => {
    let start = 0;
    let newline = chunk.indexOf(10);
    while (newline !== -1) {
      pending.push(chunk.subarray(start, newline));
      queue.push(Buffer.concat(pending));
      pending = [];
      start = newline + 1;
      newline = chunk.indexOf(10, start);
    }
    if (start < chunk.length) {
      pending.push(chunk.subarray(start));
    }
    pump();
  });
  stream.on('end', () => {
    ended = true;
    pump();
  });
  stream.on('error', () => {
    ended = true;
    pump();
  });
}

function inputStream(fd) {
  try {
    // A pipe (as the agent gives) is read through libuv without tying up a pool thread.
    const net = require('net');
    return new net.Socket({ fd, readable: true, writable: false });
  } catch (e) {
    return fs.createReadStream(null, { fd, autoClose: false, highWaterMark: 64 * 1024 });
  }
}

function main() {
  const streams = protocolStreams();

  function send(message) {
    writeAll(streams.output, message + '\n');
  }

  let handler;
  const start = process.hrtime.bigint();
  try {
    const module = require(path.join(__dirname, 'function', 'function'));
    handler = module && module.handler;
    if (typeof handler !== 'function') {
      throw new TypeError("function/function.js does not export a function `handler`");
    }
  } catch (err) {
    send(JSON.stringify(Object.assign({ ready: false }, exceptionFields(err))));
    process.exit(1);
  }
  const initTimeUs = Number((process.hrtime.bigint() - start) / 1000n);
  send(JSON.stringify({ ready: true, init_time_us: initTimeUs }));

  const meter = rssMeter();

  async function serve(line) {
    const request = JSON.parse(line.toString('utf8'));
    const event = request.event === undefined ? null : request.event;
    const wasReset = meter.resetPeak();
    let output;
    const begin = nowUs();
    let end;
    try {
      output = await handler(event);
      end = nowUs();
    } catch (err) {
      end = nowUs();
      const fields = { ok: false, kind: 'handler_error', begin_us: begin, end_us: end };
      send(JSON.stringify(Object.assign(fields, exceptionFields(err))));
      return;
    }
    let encoded;
    try {
      encoded = encodeOutput(output);
    } catch (err) {
      const fields = { ok: false, kind: 'bad_output', begin_us: begin, end_us: end };
      send(JSON.stringify(Object.assign(fields, exceptionFields(err))));
      return;
    }
    const rss = meter.peakRss(wasReset);
    const memory = rss === null ? '' : '"max_rss_kb":' + rss.kb + ',"max_rss_reset":' + rss.reset + ',';
    send('{"ok":true,"begin_us":' + begin + ',"end_us":' + end + ',' + memory + '"output":' + encoded + '}');
  }

  readLines(inputStream(streams.input), serve, () => process.exit(0));
}

main();
