"""axe-core (npm, installed from the lock by ``make node``) run on the page a test shows: the WCAG 2.1
A and AA rules, every violation listed readably (rule, impact, help, each failing node's selector and
HTML) so a failing test says what to fix."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import BrowserContext, Page

from ingest.api.assets import node_modules

WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
RUN = """async ([tags, exclude, kind]) => {
  const results = await axe.run(
    { include: [document], exclude: exclude.map((selector) => [selector]) },
    { runOnly: { type: "tag", values: tags }, resultTypes: [kind] },
  );
  return results[kind].map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.map((n) => ({
      target: n.target.join(" "),
      html: n.html,
      summary: n.failureSummary || "",
    })),
  }));
}"""


def axe_script() -> str:
    path = node_modules() / "axe-core" / "axe.min.js"
    assert path.is_file(), f"{path} is missing: make node installs axe-core from package-lock.json"
    return str(path)


def install(context: BrowserContext) -> None:
    """The engine in every page the context opens, before the page's own scripts (quicker than
    evaluating it after each navigation); ``violations`` adds it to pages without it."""
    context.add_init_script(path=axe_script())


def violations(page: Page, exclude: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """axe's WCAG 2.1 A/AA violations on ``page`` as it is now; ``exclude``: selectors of single nodes
    to leave out (each caller says why)."""
    return _run(page, exclude, "violations")


def needs_review(page: Page, exclude: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """What axe could not decide (``incomplete``: e.g. text over an image), for a person to look at."""
    return _run(page, exclude, "incomplete")


def _run(page: Page, exclude: tuple[str, ...], kind: str) -> list[dict[str, Any]]:
    if not page.evaluate("typeof window.axe === 'object'"):
        # the pages' CSP forbids inline and foreign scripts; Playwright's evaluate is not subject to it,
        # a script tag would be, so the engine's source is evaluated rather than added as a tag
        page.evaluate(_source())
    found: list[dict[str, Any]] = page.evaluate(RUN, [WCAG_21_AA, list(exclude), kind])
    return found


_cache: dict[str, str] = {}


def _source() -> str:
    if "axe" not in _cache:
        with open(axe_script(), encoding="utf-8") as file:
            _cache["axe"] = file.read()
    return _cache["axe"]


def report(name: str, found: list[dict[str, Any]]) -> str:
    lines = [f"{name}: {len(found)} WCAG 2.1 A/AA violation(s)"]
    for violation in found:
        lines.append(f"  [{violation['impact']}] {violation['id']}: {violation['help']}")
        for node in violation["nodes"]:
            lines.append(f"      {node['target']}  {node['html'][:160]}")
            summary = " ".join(node["summary"].split())
            if summary:
                lines.append(f"        {summary[:300]}")
    return "\n".join(lines)


def check(page: Page, name: str, exclude: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Fails with the readable list when axe finds a violation on the current page."""
    found = violations(page, exclude)
    assert not found, report(name, found)
    return found
