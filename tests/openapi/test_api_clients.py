"""The document proved by clients no one here wrote, against ``examples/todos.py``.

- schemathesis generates requests from the example's document (valid and invalid bodies, query
  strings and path parameters), sends them to the WSGI app in process and checks every answer:
  no 500, a documented status, the documented content type, headers and schema. Bounded: a fixed
  number of examples per operation, derandomised, so a run is the same every time.
- Headless Chromium loads ``/docs`` from the app on a loopback server, with every other host
  unreachable, and the rendered page lists every operation of the document.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import tools
from browser import chromium
from hypothesis import HealthCheck, settings

from microwsgi.server import DevServer

schemathesis = tools.require_extra("schemathesis")
tools.require_extra("selenium")
from selenium.webdriver.common.by import By  # noqa: E402 - after require_extra
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402 - after require_extra

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "todos.py"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
)


def load_todos() -> ModuleType:
    """A fresh copy of the example (its own store), not the one other tests import."""
    spec = importlib.util.spec_from_file_location("todos_for_clients", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


todos = load_todos()
schema = schemathesis.openapi.from_wsgi("/openapi.json", todos.server)


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_schemathesis_finds_no_server_error_and_no_schema_break(case: Any) -> None:
    checks = [getattr(schemathesis.checks, name) for name in CHECKS]
    case.call_and_validate(checks=checks)


def test_schemathesis_sees_every_operation() -> None:
    operations = {
        (operation.method.upper(), operation.path)
        for operation in (result.ok() for result in schema.get_all_operations())
    }
    assert operations == {
        ("GET", "/todos"),
        ("POST", "/todos"),
        ("GET", "/todos/{id}"),
        ("PUT", "/todos/{id}"),
        ("DELETE", "/todos/{id}"),
    }


@pytest.mark.e2e
def test_the_docs_page_renders_every_operation_in_chromium(tmp_path: Path) -> None:
    app = load_todos().server
    document = app.openapi(title="To-dos", version="1.0.0")
    expected = {(verb.upper(), path) for path, item in document["paths"].items() for verb in item}
    with (
        DevServer(app, "127.0.0.1", 0, threads=4, access_log=False) as server,
        chromium(tmp_path / "profile") as browser,
    ):
        browser.get(f"{server.url}/docs")
        rendered = WebDriverWait(browser, 30).until(lambda driver: operations(driver) or None)
        assert rendered == expected
        assert browser.title == "To-dos"
        # Swagger UI read the document: its title and version are on the page.
        info = browser.find_element(By.CSS_SELECTOR, ".info .title").text
        assert "To-dos" in info and "1.0.0" in info


def operations(driver: Any) -> set[tuple[str, str]]:
    """The (method, path) of each operation the page shows."""
    return {
        (
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"),
        )
        for block in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary")
    }
