"""Registers Tempo when Airflow's plugins folder points here.

Airflow imports every ``.py`` file of the plugins folder as a top-level module, so the ``tempo``
package itself is listed in ``.airflowignore`` and this one file exposes the plugin. When the
package is also pip-installed, its ``airflow.plugins`` entry point registers Tempo instead, and this
file stays silent so the plugin is not registered twice.
"""

from __future__ import annotations

from importlib.metadata import entry_points

if not any(ep.name == "tempo" for ep in entry_points(group="airflow.plugins")):
    from tempo.plugin import TempoPlugin

    __all__ = ["TempoPlugin"]
