"""The Content-Security-Policy in a real browser: the pages work under it and break no rule."""

from playwright.sync_api import Browser, Page, expect

# Every violation the page reports (the policy's own event), recorded before any page script.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline") +
                            " " + (e.sample || ""));
});
"""


def violations(page: Page) -> list[str]:
    return list(page.evaluate("window.cspViolations"))


def test_a_room_plays_under_the_policy_without_a_single_violation(
    browser: Browser, live_url: str
) -> None:
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(10_000)
    page.add_init_script(RECORD_VIOLATIONS)
    csp = []
    page.on("console", lambda m: csp.append(m.text) if "Content Security" in m.text else None)

    response = page.goto(live_url + "/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert violations(page) == []
    title = "At-least-once: a lost acknowledgement makes the retry a duplicate"
    page.get_by_role("button", name=f"Open {title}").click()
    expect(page.locator("#conn")).to_have_text("live")  # the WebSocket connected (connect-src)
    # Frames with lanes, cursors and the verdict.
    page.get_by_role("button", name="to the end").click()
    expect(page.locator("#cells-orders-0 > li").first).to_be_visible()
    expect(page.locator("#verdict")).to_contain_text("duplicate")
    # Inline style attributes (cell columns, cursor positions) are the one allowed exception.
    columns = page.locator("#cursors-orders-0").get_attribute("style") or ""
    assert "grid-template-columns" in columns

    assert violations(page) == []
    assert csp == []
