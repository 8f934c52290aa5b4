"""langgraph.json forms: module paths, the dict form with a description, env (dict and .env)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import httpx
import pytest

from conftest import ServerProcess

GRAPH_MODULE = textwrap.dedent(
    '''
    import os
    from typing_extensions import TypedDict
    from langgraph.graph import StateGraph


    class State(TypedDict, total=False):
        env: dict


    def read_env(state: State) -> dict:
        return {"env": {k: os.environ.get(k) for k in ("FROM_DICT", "FROM_FILE", "ALREADY_SET")}}


    graph = StateGraph(State).add_node("read_env", read_env).set_entry_point("read_env").compile()
    '''
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    pkg = root / "src" / "mypkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "graphs.py").write_text(GRAPH_MODULE)
    (root / "local.py").write_text(GRAPH_MODULE)
    (root / ".env").write_text("FROM_FILE=file-value\nALREADY_SET=from-file\n")
    return root


def _serve(project: Path, config: dict, tmp: Path, env: dict[str, str] | None = None) -> ServerProcess:
    path = project / f"langgraph-{len(list(project.glob('langgraph-*.json')))}.json"
    path.write_text(json.dumps(config))
    return ServerProcess(tmp, config=path, env=env).start()


def test_module_form_dict_form_and_env_dict(project: Path, tmp_path: Path):
    proc = _serve(
        project,
        {
            "dependencies": ["."],
            "graphs": {
                "pkg_graph": "mypkg.graphs:graph",
                "described": {"path": "./local.py:graph", "description": "Reads the environment"},
            },
            "env": {"FROM_DICT": "dict-value", "ALREADY_SET": "from-config"},
        },
        tmp_path,
        env={"ALREADY_SET": "from-process"},
    )
    try:
        with httpx.Client(base_url=proc.url) as http:
            assistants = {a["graph_id"]: a for a in http.post("/assistants/search", json={}).json()}
            assert assistants["described"]["description"] == "Reads the environment"
            assert assistants["pkg_graph"]["description"] is None
            out = http.post("/runs/wait", json={"assistant_id": "pkg_graph", "input": {}}).json()
            # variables already set in the process win over the config's
            assert out["env"] == {"FROM_DICT": "dict-value", "FROM_FILE": None, "ALREADY_SET": "from-process"}
    finally:
        proc.stop()


def test_env_from_dotenv_file(project: Path, tmp_path: Path):
    proc = _serve(project, {"dependencies": ["."], "graphs": {"g": "./local.py:graph"}, "env": ".env"}, tmp_path)
    try:
        with httpx.Client(base_url=proc.url) as http:
            out = http.post("/runs/wait", json={"assistant_id": "g", "input": {}}).json()
            assert out["env"]["FROM_FILE"] == "file-value"
            assert out["env"]["ALREADY_SET"] == "from-file"
    finally:
        proc.stop()
