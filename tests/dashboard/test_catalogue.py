"""The home page's catalogue grouped by leg, the scenario format page, and the room's QR code."""

import re
from html import unescape
from pathlib import Path

import pytest
import segno
from django.conf import settings
from django.test import Client

from broker.scenario import builtin_scenarios, load, load_text
from dashboard.catalogue import grouped, leg_of
from tests.dashboard.conftest import open_room

pytestmark = pytest.mark.django_db


def test_the_catalogue_is_grouped_by_leg_in_the_order_a_message_travels(client: Client) -> None:
    page = client.get("/").text

    headings = re.findall(r'<h3 id="leg-(\w+)-title">\d+\. ([^<]+?) <span', page)
    assert [unescape(h) for _, h in headings] == [
        "Producer \u2192 broker",
        "Between topics",
        "Broker \u2192 consumer",
        "Consumer \u2192 external system",
    ]
    sections = {
        key: re.findall(r'name="scenario" value="([\w-]+)"', body)
        for key, body in re.findall(
            r'<section class="leg" id="leg-(\w+)".*?>(.*?)</section>', page, re.S
        )
    }
    # Every built-in is offered once, in the group its contents say.
    assert sorted(n for names in sections.values() for n in names) == sorted(
        s.name for s in builtin_scenarios()
    )
    assert "producer-acks0-lost" in sections["producer"]
    assert "txn-zombie-fenced" in sections["topics"]
    assert "txn-read-process-write-crash" in sections["topics"]  # a processor, no producer
    assert "consumer-commit-after-processing" in sections["consumer"]
    assert "sink-dual-write" in sections["sink"]
    # The weaker promise first, and a problem before its fix.
    producer = sections["producer"]
    assert producer.index("producer-acks0-lost") < producer.index("producer-retry-duplicate")
    assert producer.index("producer-retry-duplicate") < producer.index("producer-idempotent")
    assert producer.index("producer-acks1-failover") < producer.index("producer-acks-all-failover")
    # Each with a line saying what you will see: the scenario's own title.
    assert "You'll see: acks=1: acknowledged records vanish when the leader fails over" in page


def test_a_new_scenario_lands_in_the_leg_its_contents_say() -> None:
    """Nothing lists scenarios by name: a file added tomorrow is grouped by what it holds."""
    producer_only = load("producer-idempotent").source
    text = Path(producer_only).read_text()
    assert leg_of(load_text(text, "mine")) == "producer"
    # The same producer made transactional: exactly-once between topics.
    transactional = text.replace(
        '"linger.ms" = 0', '"linger.ms" = 0\n"transactional.id" = "orders-app"', 1
    )
    assert leg_of(load_text(transactional, "mine")) == "topics"
    # A consumer reading what it wrote, and then a database behind it.
    consumer = Path(load("consumer-commit-after-processing").source).read_text()
    assert leg_of(load_text(consumer, "mine")) == "consumer"
    sink = Path(load("sink-dual-write").source).read_text()
    (leg,) = grouped([load_text(sink, "mine")])
    assert leg.key == "sink"


def test_the_scenario_format_is_a_link_that_works_offline(client: Client) -> None:
    home = client.get("/").text
    link = re.search(r'<a href="([^"]+)">the scenario file format</a>', home)
    assert link is not None

    page = client.get(link.group(1))

    assert page.status_code == 200
    doc = (settings.BASE_DIR / "docs" / "scenarios.md").read_text(encoding="utf-8")
    assert doc.splitlines()[0] in unescape(page.text)
    assert "[[steps]]" in unescape(page.text)
    assert '<pre class="doc-text">' in page.text


def dark_modules(svg: str) -> set[tuple[int, int]]:
    """The dark modules of segno's inline SVG: one path of "M x y", "m dx dy" and "h n" runs."""
    path = re.search(r'<path stroke="#000" d="([^"]+)"', svg)
    assert path is not None
    x = y = 0.0
    dark: set[tuple[int, int]] = set()
    for op, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?:[ ,](-?[\d.]+))?", path.group(1)):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            for i in range(int(float(a))):
                dark.add((int(x) + i, int(y)))
            x += float(a)
    return dark


def test_the_presenters_page_has_a_qr_code_of_the_join_link(client: Client) -> None:
    page = client.get(open_room(client)).text

    join_url = re.search(r'<a id="attendee-link" href="([^"]+)"', page).group(1)
    assert re.search(r"/r/[A-Z0-9-]+/$", join_url)
    qr_svg = re.search(r'<figure class="join-qr" id="join-qr">(<svg.*?</svg>)</figure>', page, re.S)
    assert qr_svg is not None
    # The page's QR code reads as the join link: the same modules as segno's code for it.
    drawn = dark_modules(qr_svg.group(1))
    matrices = []
    for level in "lmqh":
        qr = segno.make(join_url, error=level)
        matrices.append(
            {(x + 2, y + 2) for y, row in enumerate(qr.matrix) for x, bit in enumerate(row) if bit}
        )
    assert drawn in matrices


def test_attendees_get_no_qr_code_or_presenter_link(client: Client) -> None:
    url = open_room(client)
    attendee = Client()

    page = attendee.get(url).text

    assert 'id="join-qr"' not in page
    assert "/present/" not in page
