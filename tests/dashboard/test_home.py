import re
import sys
from types import ModuleType, SimpleNamespace

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command, get_commands
from django.test import Client

from broker.scenario import BUILTIN_DIR
from dashboard.asgi import application

SCRIPT_SRC = re.compile(r'<script[^>]*\bsrc="([^"]+)"')


def test_home_page_names_the_lab(client: Client) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert "<title>Delivery Lab</title>" in response.text
    assert "<h1>Delivery Lab</h1>" in response.text


def test_home_page_loads_htmx_and_ws_extension_from_local_static(client: Client) -> None:
    sources = SCRIPT_SRC.findall(client.get("/").text)

    assert sources == [
        "/static/vendor/htmx/htmx.min.js",
        "/static/vendor/htmx-ext-ws/ws.min.js",
        "/static/js/errors.js",
    ]


def test_home_page_shows_how_to_run_a_scenario_from_a_terminal(client: Client) -> None:
    assert "python -m broker run NAME --trace" in client.get("/").text


def test_home_page_lists_the_engines_builtin_scenarios(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario_module = ModuleType("broker.scenario")
    # What the catalogue reads to group them by leg (catalogue.py): a producer alone.
    bare = {"semantics": "", "sink": None, "processors": (), "producers": (), "consumers": ()}
    scenario_module.builtin_scenarios = lambda: [  # type: ignore[attr-defined]
        SimpleNamespace(
            name="producer-retry-duplicate", title="A retry writes a duplicate", expected={}, **bare
        ),
        SimpleNamespace(
            name="idempotent-producer", title="Idempotence drops the retry", expected={}, **bare
        ),
    ]
    monkeypatch.setitem(sys.modules, "broker", ModuleType("broker"))
    monkeypatch.setitem(sys.modules, "broker.scenario", scenario_module)

    page = client.get("/").text

    assert "<code>producer-retry-duplicate</code>" in page
    assert "You'll see: A retry writes a duplicate" in page
    assert "<code>idempotent-producer</code>" in page
    assert "You'll see: Idempotence drops the retry" in page


def test_home_page_renders_without_the_engine(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes the import fail as if the module did not exist.
    monkeypatch.setitem(sys.modules, "broker.scenario", None)

    response = client.get("/")

    assert response.status_code == 200
    assert "The simulation engine is not installed yet" in response.text


def test_home_page_does_not_hide_a_broken_engine(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine is there, but importing from it fails on one of its own missing imports.
    def fail_on_any_name(name: str) -> object:
        raise ModuleNotFoundError("No module named 'broker.records'", name="broker.records")

    scenario_module = ModuleType("broker.scenario")
    scenario_module.__getattr__ = fail_on_any_name  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "broker", ModuleType("broker"))
    monkeypatch.setitem(sys.modules, "broker.scenario", scenario_module)

    with pytest.raises(ModuleNotFoundError, match=r"broker\.records"):
        client.get("/")


async def asgi_get(path: str) -> tuple[int, bytes]:
    """GET `path` from the ASGI application; channels' HttpCommunicator chokes on body-less
    chunks, which the ASGI spec allows and Django's streamed file responses send."""
    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": []}
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(timeout=5)
    body = b""
    while True:
        chunk = await communicator.receive_output(timeout=5)
        body += chunk.get("body", b"")
        if not chunk.get("more_body", False):
            return start["status"], body


async def test_asgi_application_serves_vendored_htmx() -> None:
    status, body = await asgi_get("/static/vendor/htmx/htmx.min.js")

    assert status == 200
    assert b'version:"2.0.11"' in body


def test_system_checks_pass() -> None:
    call_command("check", fail_level="WARNING")


@pytest.mark.django_db
def test_models_and_migrations_agree() -> None:
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_runserver_serves_through_daphne() -> None:
    assert get_commands()["runserver"] == "daphne"


def test_a_bad_upload_over_htmx_answers_with_its_error_alone(client: Client) -> None:
    """The page stays (the chosen file stays selected): only the error block comes back."""
    upload = SimpleUploadedFile("bad.toml", b'name = "x"\n[cluster]\nbrokerz = 3\n')

    response = client.post("/upload/", {"scenario": upload}, HTTP_HX_REQUEST="true")

    assert response.status_code == 400
    assert response.text.lstrip().startswith('<div class="notice is-error" role="alert"')
    assert "the file you chose is still selected" in response.text
    assert "<html" not in response.text


@pytest.mark.django_db
def test_a_good_upload_over_htmx_goes_to_its_room(client: Client) -> None:
    text = (BUILTIN_DIR / "producer-idempotent.toml").read_bytes()
    upload = SimpleUploadedFile("mine.toml", text)

    response = client.post("/upload/", {"scenario": upload}, HTTP_HX_REQUEST="true")

    assert response.status_code == 204
    assert response["HX-Redirect"].startswith("/rooms/")


def test_without_javascript_a_bad_upload_lands_on_its_error(client: Client) -> None:
    upload = SimpleUploadedFile("bad.toml", b'name = "x"\n[cluster]\nbrokerz = 3\n')

    page = client.post("/upload/", {"scenario": upload}).text

    assert 'id="upload-error" tabindex="-1" autofocus' in page


@pytest.mark.django_db
def test_the_room_says_where_the_lab_simplifies_kafka_and_links_the_full_list(
    client: Client,
) -> None:
    from tests.dashboard.conftest import open_room

    page = client.get(open_room(client)).text
    assert "Where this lab simplifies Kafka" in page
    assert 'href="/docs/architecture/"' in page
    doc = client.get("/docs/architecture/")
    assert doc.status_code == 200 and "## Where the lab simplifies Kafka" in doc.text
    assert client.get("/docs/settings/").status_code == 404  # only the lab's documents
