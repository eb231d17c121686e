"""The trainer's event log (metrics.json) is only ever appended to: a resumed run adds to
it, and no library code writes anything else under that name (issue 15)."""
import ast
import json
import pathlib

from detectron2.utils.events import EventStorage, JSONWriter

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "detectron2"


def _write(path, start: int, n: int) -> None:
    writer = JSONWriter(str(path))
    with EventStorage(start) as storage:
        for it in range(start, start + n):
            storage.iter = it
            storage.put_scalar("loss", float(it), smoothing_hint=False)
            writer.write()
    writer.close()


def test_a_resumed_run_appends_to_the_event_log(tmp_path):
    path = tmp_path / "metrics.json"
    _write(path, 0, 3)
    _write(path, 3, 2)  # resumed run, new writer on the same file
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [0, 1, 2, 3, 4]
    assert [x["loss"] for x in lines] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_only_json_writers_name_metrics_json():
    """Every "metrics.json" literal in the library is the argument of a JSONWriter(...) call
    (through os.path.join): nothing else opens the event log, let alone for writing."""
    offenders, writers = [], 0
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        allowed = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "JSONWriter":
                allowed |= {id(n) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value == "metrics.json":
                if id(node) in allowed:
                    writers += 1
                else:
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []
    assert writers >= 1  # the trainer's default writers do name it
