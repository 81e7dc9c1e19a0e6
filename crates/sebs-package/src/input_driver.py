# sebs-local's driver of a benchmark's input.py, run by the host's python3 (see input.rs).
#
# argv: mode (inspect | generate | validate), path of input.py, benchmark name.
# stdin, first line: the call's arguments as JSON; later lines: answers to storage calls.
# stdout: one JSON line per storage call, then {"result": ...}. The benchmark's own prints
# go to stderr, so that they never spoil the protocol.
import importlib.util
import inspect
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
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return "storage" in params or any(
        p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())


def main():
    mode, path, name = sys.argv[1:4]
    args = json.loads(protocol_in.readline() or "{}")
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location("sebs_benchmark_input", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if mode == "inspect":
        buckets = None
        if hasattr(module, "buckets_count"):
            n_in, n_out = module.buckets_count()
            buckets = [int(n_in), int(n_out)]
        tables = None
        if hasattr(module, "allocate_nosql"):
            tables = plain(module.allocate_nosql(), "allocate_nosql()")
        result = {"buckets": buckets, "tables": tables}
    elif mode == "generate":
        result = module.generate_input(
            args["data_dir"], args["size"], args["bucket"], args["input_prefixes"],
            args["output_prefixes"], upload_func, nosql_func)
    else:
        if args.get("project_root"):
            project_root_module(args["project_root"])
        validate = getattr(module, "validate_output", None)
        if validate is None:
            result = {"status": "none"}
        else:
            call = [args["data_dir"], args["input"], args["output"], args["language"]]
            if accepts_storage(validate):
                message = validate(*call, storage=HostStorage())
            else:
                message = validate(*call)
            if message is None:
                result = {"status": "passed"}
            else:
                result = {"status": "failed", "message": str(message)}
    send({"result": result})


main()
