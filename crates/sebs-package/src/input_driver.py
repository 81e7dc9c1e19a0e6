# sebs-local's driver of a benchmark's input.py, run by the host's python3 (see input.rs).
#
# argv: path of input.py, benchmark name. input.py is imported at once, before any command
# comes, so that a caller who starts us early finds it loaded.
# stdin: one command a line, {"command": "inspect" | "generate" | "validate", "args": {...}},
# and the answers to storage calls; we exit when it closes.
# stdout: for each command, one JSON line per storage call, then {"result": ...}. The
# benchmark's own prints go to stderr, so that they never spoil the protocol.
import importlib.util
import json
import os
import sys
import types

protocol_out = sys.stdout
protocol_in = sys.stdin
sys.stdout = sys.stderr
sys.stdin = open(os.devnull)


def send(message):
    protocol_out.write(json.dumps(message) + "\n")
    protocol_out.flush()


class StorageCallFailed(Exception):
    """A storage call that sebs-local could not carry out."""


def storage_call(message):
    send(message)
    line = protocol_in.readline()
    if not line:
        raise StorageCallFailed("sebs-local closed the storage channel")
    answer = json.loads(line)
    if "error" in answer:
        # Said before raising: the benchmark may catch this and raise something else.
        send({"storage_failed": answer["error"]})
        raise StorageCallFailed(answer["error"])


def plain(value, what):
    """A JSON value, or a clear error naming what is not one (e.g. a Decimal)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as e:
        raise TypeError("{} is not JSON: {}".format(what, e))


def upload_func(index, key, path):
    storage_call({"call": "upload", "index": int(index), "key": str(key),
                  "path": os.path.abspath(str(path))})


def nosql_func(benchmark, table, item, primary_key, secondary_key):
    item = dict(plain(item, "the item of table {}".format(table)))
    for name, value in (primary_key, secondary_key):
        item[name] = plain(value, "key {} of table {}".format(name, table))
    storage_call({"call": "nosql_put", "benchmark": str(benchmark), "table": str(table),
                  "item": item})


class HostStorage:
    """What SeBS hands validate_output as `storage`: its host-side storage client."""

    def download(self, bucket, key, filepath):
        storage_call({"call": "download", "bucket": str(bucket), "key": str(key),
                      "path": os.path.abspath(str(filepath))})


def project_root_module(root):
    """`sebs.utils.get_project_root()` for validators that read SeBS's data repository."""
    import pathlib
    sebs = types.ModuleType("sebs")
    utils = types.ModuleType("sebs.utils")
    utils.get_project_root = lambda: pathlib.Path(root)
    sebs.utils = utils
    sys.modules["sebs"] = sebs
    sys.modules["sebs.utils"] = utils


def accepts_storage(function):
    # Imported here: only validators need it, and it costs every start its import time.
    import inspect
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return "storage" in params or any(
        p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())


def inspect_needs(module):
    buckets = None
    if hasattr(module, "buckets_count"):
        n_in, n_out = module.buckets_count()
        buckets = [int(n_in), int(n_out)]
    tables = None
    if hasattr(module, "allocate_nosql"):
        tables = plain(module.allocate_nosql(), "allocate_nosql()")
    return {"buckets": buckets, "tables": tables}


def generate(module, args):
    return module.generate_input(
        args["data_dir"], args["size"], args["bucket"], args["input_prefixes"],
        args["output_prefixes"], upload_func, nosql_func)


def validate(module, args):
    if args.get("project_root"):
        project_root_module(args["project_root"])
    validator = getattr(module, "validate_output", None)
    if validator is None:
        return {"status": "none"}
    call = [args["data_dir"], args["input"], args["output"], args["language"]]
    if accepts_storage(validator):
        message = validator(*call, storage=HostStorage())
    else:
        message = validator(*call)
    if message is None:
        return {"status": "passed"}
    return {"status": "failed", "message": str(message)}


def main():
    path, name = sys.argv[1:3]
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location("sebs_benchmark_input", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    commands = {"inspect": lambda args: inspect_needs(module),
                "generate": lambda args: generate(module, args),
                "validate": lambda args: validate(module, args)}
    while True:
        line = protocol_in.readline()
        if not line:
            break
        request = json.loads(line)
        send({"result": commands[request["command"]](request.get("args") or {})})


main()
