from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib

from tests.conftest import REPO

HIDE_INSTALLED_PACKAGE = textwrap.dedent(
    """
    # Make the pip-installed distribution invisible, as on a machine where Tempo is only copied into
    # Airflow's plugins folder.
    import importlib.metadata, importlib_metadata
    for module in (importlib.metadata, importlib_metadata):
        original = module.distributions
        module.distributions = (
            lambda original: lambda **kw: [d for d in original(**kw) if d.metadata["Name"] != "airflow-tempo"]
        )(original)
    """
)

RUN_AIRFLOW_PLUGINS = (
    "import sys\nfrom airflow.__main__ import main\nsys.argv = ['airflow', 'plugins', '-o', 'json']\nmain()\n"
)


def airflow_plugins(tmp_path, plugins_folder, prelude: str = "") -> list[dict]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    result = subprocess.run(
        [sys.executable, "-c", prelude + RUN_AIRFLOW_PLUGINS],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Failed to import plugin" not in result.stderr
    assert "already registered" not in result.stderr + result.stdout
    start = result.stdout.index("[")
    return json.loads(result.stdout[start:])


def test_plugin_loads_from_the_installed_entry_point(tmp_path):
    empty = tmp_path / "plugins"
    empty.mkdir()
    plugins = airflow_plugins(tmp_path, empty)
    tempo = [p for p in plugins if p["name"] == "tempo"]
    assert len(tempo) == 1
    assert "tempo.listeners" in str(tempo[0]["listeners"])
    assert "airflow-tempo" in str(tempo[0]["source"])
    # The web app is mounted at /tempo and Airflow's navigation links to it.
    assert [app["url_prefix"] for app in tempo[0]["fastapi_apps"]] == ["/tempo"]
    # The pages people open stand in the navigation bar itself; the outbox in the Admin menu.
    views = {view["href"]: view for view in tempo[0]["external_views"]}
    top_level = {href for href, view in views.items() if view.get("nav_top_level")}
    assert top_level == {"/tempo/inbox", "/tempo/start", "/tempo/sla", "/tempo/reports/funnel"}
    assert views["/tempo/admin/outbox"]["category"] == "admin"
    assert all(
        view["icon"].startswith("data:image/svg+xml;base64,")
        for href, view in views.items()
        if href in top_level
    )


def test_plugin_loads_from_the_plugins_folder_alone(tmp_path):
    plugins = airflow_plugins(tmp_path, REPO / "plugins", prelude=HIDE_INSTALLED_PACKAGE)
    tempo = [p for p in plugins if p["name"] == "tempo"]
    assert len(tempo) == 1
    assert "tempo_plugin.py" in str(tempo[0]["source"])


def test_plugin_folder_and_entry_point_together_register_once(tmp_path):
    plugins = airflow_plugins(tmp_path, REPO / "plugins")
    assert [p["name"] for p in plugins].count("tempo") == 1


def test_loading_the_plugin_has_no_side_effects(tmp_path):
    """Importing the plugin creates no tables, no files and opens no connection."""
    store = tmp_path / "tempo.db"
    code = textwrap.dedent(
        f"""
        import os, socket
        os.environ["AIRFLOW__TEMPO__SQL_ALCHEMY_CONN"] = "sqlite:///{store}"
        def no_network(*a, **k):
            raise AssertionError("network used at import")
        socket.socket.connect = no_network
        import tempo.plugin, tempo, tempo.listeners
        from tempo import HumanStep, NotifyStep, process, Form, Text
        assert not os.path.exists("{store}")
        print("clean")
        """
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("clean")
    assert not store.exists()


def test_a_production_install_needs_no_development_harness():
    """`pip install .` pulls neither the harness (devtools/tempo_dev) nor what only the harness uses,
    and nothing in the runtime package imports them."""
    harness_only = {"tempo_dev", "tempo-dev", "aiosmtpd", "httpx"}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    required = {re.match(r"[A-Za-z0-9_.-]+", dependency)[0].lower() for dependency in project["dependencies"]}
    assert not required & harness_only
    imported = set()
    for path in (REPO / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert not imported & harness_only
