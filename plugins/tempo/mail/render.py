"""Render an email from one template with three blocks: ``subject``, ``text`` and ``html``.

The HTML block is rendered with autoescaping on, the subject and text blocks with it off: user data
(titles, form answers) is escaped where it could become markup and left readable where it cannot.
Templates are found in ``[tempo] templates_folder``/mail, never relative to the working directory.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy.orm import Session

from tempo import config, wording


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@functools.cache
def _environment(folder: str, autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(default=True, default_for_string=True) if autoescape else False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(wording.FILTERS)
    return env


def _render_block(env: SandboxedEnvironment, name: str, block: str, context: dict[str, Any]) -> str:
    template = env.get_template(name)
    if block not in template.blocks:
        raise LookupError(f"mail template {name!r} has no {block!r} block")
    return "".join(template.blocks[block](template.new_context(context))).strip()


def render_mail(
    template: str, context: dict[str, Any], folder: str | None = None, session: Session | None = None
) -> RenderedMail:
    """Render ``template`` with ``context``, ``base_url`` and ``names`` (``wording.Names``, which
    looks people, roles, units and counterparties up through ``session``)."""
    folder = folder or str(Path(config.templates_folder()) / "mail")
    name = template if template.endswith(".j2") else f"{template}.j2"
    plain, markup = _environment(folder, False), _environment(folder, True)
    context = {"base_url": config.base_url(), "names": wording.Names(session), **context}
    # A header cannot hold a line break: one in user data must not smuggle in another header.
    subject = " ".join(_render_block(plain, name, "subject", context).split())
    return RenderedMail(
        subject=subject,
        text=_render_block(plain, name, "text", context) + "\n",
        html=_render_block(markup, name, "html", context),
    )
