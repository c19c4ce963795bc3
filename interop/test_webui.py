"""The web UI in a real browser: Selenium 4 driving Debian's chromium and chromium-driver
(/usr/bin/chromium, /usr/bin/chromedriver; override with $CHROMIUM and $CHROMEDRIVER).

The UI is served by the management server at $MGMT_URL. The tests log in, create a
vhost, a user, permissions, a queue and a binding through the forms, publish and get
messages, purge and delete, set policies and limits, download and upload definitions,
close a connection, see the alarm banner of a Warren started here over its memory
watermark, and time the first page of a 10 000-queue listing. Screenshots of the main
pages are saved to $WEBUI_SCREENSHOTS (default target/webui-screenshots/).

Skipped when $MGMT_URL is unset; when it is set, a missing chromium or chromedriver is a
failure (CI installs them), not a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pika
import pytest
import requests

from helpers import named_connection

MGMT_URL = os.environ.get("MGMT_URL", "").rstrip("/")
pytestmark = pytest.mark.skipif(
    not MGMT_URL, reason="MGMT_URL is not set: no management server to test the web UI on"
)

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SHOTS = Path(os.environ.get("WEBUI_SCREENSHOTS", REPO / "target" / "webui-screenshots"))
ADMIN = ("guest", "guest")
WAIT = 10

# Imported here so that a run without MGMT_URL (no selenium needed) still collects.
if MGMT_URL:
    from selenium import webdriver
    from selenium.common.exceptions import NoSuchElementException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait


def name(prefix: str) -> str:
    return f"ui-{prefix}-{uuid.uuid4().hex[:10]}"


def api(method: str, path: str, base: str = "", **kw) -> requests.Response:
    return requests.request(method, (base or MGMT_URL) + "/api" + path, auth=ADMIN, timeout=10, **kw)


def seg(s: str) -> str:
    return quote(s, safe="")


# --- the browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def downloads():
    d = tempfile.mkdtemp(prefix="webui-downloads-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(downloads):
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.fail(f"{path} is missing: install Debian's chromium and chromium-driver")
    profile = tempfile.mkdtemp(prefix="webui-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads),
        "download.prompt_for_download": False,
    })
    # The driver is given: Selenium Manager must not look for one on the network.
    os.environ["SE_OFFLINE"] = "true"
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(1400, 1000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nweb UI screenshots: {SHOTS}")
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait(driver, timeout: float = WAIT):
    return WebDriverWait(driver, timeout, poll_frequency=0.05)


def find(driver, css: str):
    return wait(driver).until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))


def wait_text(driver, css: str, text: str, timeout: float = WAIT):
    wait(driver, timeout).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))


def shot(driver, label: str) -> None:
    """Saves the whole page (the window grown to its height, then restored)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, max(1000, min(height + 120, 5000)))
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(SHOTS / f"{label}.png"))
    driver.set_window_size(1400, 1000)


def go(driver, route: str, base: str = ""):
    """Opens a page (`queues`, `queues/%2F/name`) and waits for its first refresh."""
    driver.get(f"{base or MGMT_URL}/#/{route}")
    wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, "#main h1"))


def login(driver, user: str = "guest", password: str = "guest", base: str = ""):
    driver.get((base or MGMT_URL) + "/#/logout")
    find(driver, "#login-form")
    fill(driver, "#login-username", user)
    fill(driver, "#login-password", password)
    driver.find_element(By.CSS_SELECTOR, "#login-submit").click()


def logged_in(driver, user: str = "guest", password: str = "guest", base: str = ""):
    login(driver, user, password, base=base)
    wait_text(driver, "#user-name", user)


def fill(driver_or_el, css: str, value: str):
    el = driver_or_el.find_element(By.CSS_SELECTOR, css)
    el.clear()
    el.send_keys(value)


def fill_in(form, **values: str):
    """Types into the form's inputs and text areas, by name."""
    for key, value in values.items():
        fill(form, f"[name='{key}']", value)


def choose(form, name_: str, value: str):
    Select(form.find_element(By.CSS_SELECTOR, f"select[name='{name_}']")).select_by_value(value)


def arg(form, editor: str, key: str, value: str, kind: str = "string"):
    """Fills the next free row of an arguments editor."""
    rows = form.find_elements(By.CSS_SELECTOR, f"[data-args='{editor}'] .arg-row")
    row = rows[-1]
    row.find_element(By.CSS_SELECTOR, ".arg-key").send_keys(key)
    row.find_element(By.CSS_SELECTOR, ".arg-value").send_keys(value)
    Select(row.find_element(By.CSS_SELECTOR, ".arg-type")).select_by_value(kind)


def submit(driver, form_id: str, expect_flash: str | None = None):
    driver.find_element(By.CSS_SELECTOR, f"#{form_id} button[type=submit]").click()
    if expect_flash:
        wait_text(driver, "#flash", expect_flash)


def accept_confirm(driver):
    wait(driver).until(EC.alert_is_present())
    driver.switch_to.alert.accept()


def row(driver, table_id: str, text: str):
    """The row of a table that contains `text`, once it is there."""
    xpath = f"//table[@id='{table_id}']//tr[td[contains(normalize-space(.), {xpath_str(text)})]]"
    return wait(driver).until(EC.visibility_of_element_located((By.XPATH, xpath)))


def xpath_str(s: str) -> str:
    return f"'{s}'" if "'" not in s else f'"{s}"'


# --- login and the overview ----------------------------------------------------------


@pytest.mark.timeout(60)
def test_wrong_password_is_refused_and_guest_logs_in(browser):
    login(browser, "guest", "not-the-password")
    wait_text(browser, "#login-error", "Login failed")
    assert browser.find_element(By.CSS_SELECTOR, "#header").is_displayed() is False
    shot(browser, "00-login-refused")
    logged_in(browser)
    assert "administrator" in browser.find_element(By.CSS_SELECTOR, "#user-tags").text
    go(browser, "")
    wait(browser).until(lambda d: d.find_element(By.CSS_SELECTOR, "#object-totals .total-value").text != "")
    assert browser.find_element(By.CSS_SELECTOR, "#cluster-name").text
    # Two samples at least, so that the charts draw lines.
    browser.find_element(By.CSS_SELECTOR, "#nodes tbody tr")
    wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "svg.chart polyline")) >= 3)
    assert browser.find_element(By.CSS_SELECTOR, "#alarms").is_displayed() is False
    shot(browser, "01-overview")
    # Logging out forgets the credentials.
    browser.find_element(By.CSS_SELECTOR, "#logout").click()
    find(browser, "#login-form")
    browser.refresh()
    find(browser, "#login-form")


# --- vhost, user, queue, binding, publish, get, purge, delete ------------------------


@pytest.mark.timeout(120)
def test_vhost_user_queue_binding_publish_get_purge_delete(browser):
    vhost, user, queue = name("vhost"), name("user"), name("queue")
    try:
        logged_in(browser)
        # A vhost through the form.
        go(browser, "vhosts")
        form = find(browser, "#add-vhost")
        fill_in(form, name=vhost, description="made by the web UI test")
        submit(browser, "add-vhost", f"Virtual host {vhost} added")
        row(browser, "vhosts-table", vhost)
        assert api("GET", f"/vhosts/{seg(vhost)}").json()["description"] == "made by the web UI test"
        shot(browser, "20-admin-vhosts")

        # A user, then their permissions in the vhost, on the user's page.
        go(browser, "users")
        form = find(browser, "#add-user")
        fill_in(form, name=user, password="secret", tags="management")
        submit(browser, "add-user", f"User {user} added")
        row(browser, "users-table", user)
        shot(browser, "21-admin-users")
        browser.find_element(By.LINK_TEXT, user).click()
        form = find(browser, "#set-permission")
        choose(form, "vhost", vhost)
        fill(form, "input[name=read]", "^ui-")
        submit(browser, "set-permission", "Permissions of")
        row(browser, "user-permissions", vhost)
        perm = api("GET", f"/permissions/{seg(vhost)}/{seg(user)}").json()
        assert (perm["configure"], perm["write"], perm["read"]) == (".*", ".*", "^ui-")
        # guest too, so that guest can act in the vhost.
        api("PUT", f"/permissions/{seg(vhost)}/guest", json={"configure": ".*", "write": ".*", "read": ".*"})
        shot(browser, "22-admin-user")

        # A queue with an argument.
        go(browser, "queues")
        form = find(browser, "#add-queue")
        browser.refresh()  # the vhost list of the form is read when the page opens
        form = find(browser, "#add-queue")
        choose(form, "vhost", vhost)
        fill(form, "input[name=name]", queue)
        arg(form, "arguments", "x-max-length", "100", "number")
        submit(browser, "add-queue", f"Queue {queue} added")
        q = api("GET", f"/queues/{seg(vhost)}/{seg(queue)}").json()
        assert q["durable"] is True and q["arguments"] == {"x-max-length": 100}

        # The queue's page: a binding from amq.direct.
        go(browser, f"queues/{seg(vhost)}/{seg(queue)}")
        wait_text(browser, "#main", "x-max-length: 100")
        form = find(browser, "#add-binding")
        fill(form, "input[name=source]", "amq.direct")
        fill(form, "input[name=routing_key]", "ui-key")
        submit(browser, "add-binding", "Binding added")
        row(browser, "queue-bindings", "ui-key")

        # Publish through the exchange's form, with properties and a header.
        go(browser, f"exchanges/{seg(vhost)}/amq.direct")
        row(browser, "bindings-source", "ui-key")
        form = find(browser, "#publish-message")
        fill(form, "input[name=routing_key]", "ui-key")
        choose(form, "delivery_mode", "2")
        arg(form, "headers", "x-origin", "web-ui")
        arg(form, "properties", "content_type", "text/plain")
        arg(form, "properties", "message_id", "m-1")
        fill(form, "textarea[name=payload]", "hello from the web UI")
        submit(browser, "publish-message", "Message published.")
        shot(browser, "30-exchange")

        # And through the queue's own form (the default exchange).
        go(browser, f"queues/{seg(vhost)}/{seg(queue)}")
        form = find(browser, "#publish-message")
        fill(form, "textarea[name=payload]", "second")
        submit(browser, "publish-message", "Message published.")
        wait(browser).until(lambda d: api("GET", f"/queues/{seg(vhost)}/{seg(queue)}").json()["messages"] == 2)

        # Get them back, requeued: payload and properties are shown.
        form = find(browser, "#get-messages")
        fill(form, "input[name=count]", "2")
        submit(browser, "get-messages", "2 messages fetched")
        result = browser.find_element(By.CSS_SELECTOR, "#get-result")
        payloads = [p.text for p in result.find_elements(By.CSS_SELECTOR, "pre.payload")]
        assert payloads == ["hello from the web UI", "second"]
        first = result.find_elements(By.CSS_SELECTOR, ".message")[0]
        props = first.find_element(By.CSS_SELECTOR, ".message-properties").text
        assert "content_type text/plain" in props and "message_id m-1" in props and "delivery_mode 2" in props
        assert "x-origin web-ui" in first.find_element(By.CSS_SELECTOR, ".message-headers").text
        assert "ui-key" in first.text and "amq.direct" in first.text
        wait_text(browser, "#main table.facts", "2")
        shot(browser, "31-queue")

        # Purge, then delete.
        browser.find_element(By.XPATH, "//button[text()='Purge messages']").click()
        accept_confirm(browser)
        wait_text(browser, "#flash", f"Queue {queue} purged")
        assert api("GET", f"/queues/{seg(vhost)}/{seg(queue)}").json()["messages"] == 0
        browser.find_element(By.XPATH, "//button[text()='Delete queue']").click()
        accept_confirm(browser)
        wait_text(browser, "#flash", f"Queue {queue} deleted")
        wait(browser).until(EC.url_contains("#/queues"))
        assert api("GET", f"/queues/{seg(vhost)}/{seg(queue)}").status_code == 404

        # The user can log in to the UI, and sees no Admin tab.
        logged_in(browser, user, "secret")
        assert not browser.find_element(By.CSS_SELECTOR, "a[data-tab=admin]").is_displayed()
        logged_in(browser)

        # Delete the vhost and the user through their pages.
        go(browser, f"vhosts/{seg(vhost)}")
        browser.find_element(By.XPATH, "//button[text()='Delete']").click()
        accept_confirm(browser)
        wait_text(browser, "#flash", f"Virtual host {vhost} deleted")
        go(browser, f"users/{seg(user)}")
        browser.find_element(By.XPATH, "//button[text()='Delete']").click()
        accept_confirm(browser)
        wait_text(browser, "#flash", f"User {user} deleted")
        assert api("GET", f"/vhosts/{seg(vhost)}").status_code == 404
        assert api("GET", f"/users/{seg(user)}").status_code == 404
    finally:
        api("DELETE", f"/vhosts/{seg(vhost)}")
        api("DELETE", f"/users/{seg(user)}")


# --- lists ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_lists_filter_sort_and_refresh_in_place(browser):
    queues = [name("list") for _ in range(3)]
    try:
        for q in queues:
            api("PUT", f"/queues/%2F/{seg(q)}", json={"durable": False})
        logged_in(browser)
        go(browser, "queues")
        find(browser, "#queues input.filter")
        fill(browser, "#queues input.filter", queues[1])
        row(browser, "queues-table", queues[1])
        wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#queues-table tbody tr[data-key]")) == 1)
        wait_text(browser, "#queues .summary", "filtered from")
        # A refresh patches the row in place: the same element, its count updated; what
        # is being typed in a form keeps its text and the focus.
        tr = browser.find_element(By.CSS_SELECTOR, "#queues-table tbody tr[data-key]")
        Select(browser.find_element(By.CSS_SELECTOR, "#refresh-interval")).select_by_value("5")
        draft = browser.find_element(By.CSS_SELECTOR, "#add-queue input[name=name]")
        draft.click()
        draft.send_keys("half-typed")
        api("POST", "/exchanges/%2F/amq.default/publish",
            json={"properties": {}, "routing_key": queues[1], "payload": "x", "payload_encoding": "string"})
        wait(browser).until(lambda d: tr.find_elements(By.CSS_SELECTOR, "td")[8].text == "1")
        assert browser.switch_to.active_element == draft
        assert draft.get_attribute("value") == "half-typed"
        assert browser.find_element(By.CSS_SELECTOR, "#queues input.filter").get_attribute("value") == queues[1]
        draft.clear()
        # Sorting by a column marks it.
        browser.find_element(By.XPATH, "//table[@id='queues-table']//th[text()='Total']").click()
        wait(browser).until(lambda d: "sorted" in d.find_element(By.XPATH, "//table[@id='queues-table']//th[text()='Total']").get_attribute("class"))
        fill(browser, "#queues input.filter", "")
        shot(browser, "10-queues")
        for i, page in enumerate(("exchanges", "connections", "channels"), start=1):
            go(browser, page)
            find(browser, f"#{page}-table")
            shot(browser, f"1{i}-{page}")
    finally:
        for q in queues:
            api("DELETE", f"/queues/%2F/{seg(q)}")


# --- policies and limits -------------------------------------------------------------


@pytest.mark.timeout(90)
def test_policies_and_limits_forms(browser):
    vhost, policy, user, maker = name("pvhost"), name("policy"), name("luser"), name("maker")
    api("PUT", f"/vhosts/{seg(vhost)}", json={})
    api("PUT", f"/users/{seg(user)}", json={"password": "x", "tags": ""})
    try:
        logged_in(browser)
        go(browser, "policies")
        form = find(browser, "#add-policies")
        choose(form, "vhost", vhost)
        fill(form, "input[name=name]", policy)
        fill(form, "input[name=pattern]", "^ui-")
        choose(form, "apply-to", "queues")
        fill(form, "input[name=priority]", "3")
        arg(form, "definition", "max-length", "10", "number")
        arg(form, "definition", "overflow", "reject-publish")
        submit(browser, "add-policies", f"Policy {policy} set")
        row(browser, "policies-table", policy)
        p = api("GET", f"/policies/{seg(vhost)}/{seg(policy)}").json()
        assert p["pattern"] == "^ui-" and p["apply-to"] == "queues" and p["priority"] == 3
        assert p["definition"] == {"max-length": 10, "overflow": "reject-publish"}
        # Queues show the policy that applies to them.
        api("PUT", f"/permissions/{seg(vhost)}/guest", json={"configure": ".*", "write": ".*", "read": ".*"})
        api("PUT", f"/queues/{seg(vhost)}/ui-q", json={})
        go(browser, f"queues/{seg(vhost)}/ui-q")
        wait_text(browser, "#main", "max-length: 10, overflow: reject-publish")
        shot(browser, "32-queue-with-policy")
        # An operator policy too.
        go(browser, "policies")
        form = find(browser, "#add-operator-policies")
        choose(form, "vhost", vhost)
        fill(form, "input[name=name]", policy)
        fill(form, "input[name=pattern]", ".*")
        arg(form, "definition", "max-length", "1000", "number")
        submit(browser, "add-operator-policies", f"Operator policy {policy} set")
        row(browser, "operator-policies-table", policy)
        shot(browser, "23-admin-policies")
        # Deleting through the table's button.
        tr = row(browser, "policies-table", policy)
        tr.find_element(By.CSS_SELECTOR, "button.danger").click()
        accept_confirm(browser)
        wait_text(browser, "#flash", f"Policy {policy} deleted")
        assert api("GET", f"/policies/{seg(vhost)}/{seg(policy)}").status_code == 404

        # Limits of the vhost and of the user.
        go(browser, "limits")
        form = find(browser, "#set-vhost-limit")
        choose(form, "vhost", vhost)
        choose(form, "limit", "max-queues")
        fill(form, "input[name=value]", "7")
        submit(browser, "set-vhost-limit", f"Limit max-queues of {vhost} set")
        row(browser, "vhost-limits-table", vhost)
        form = find(browser, "#set-user-limit")
        fill_in(form, user=user, value="5")
        choose(form, "limit", "max-channels")
        submit(browser, "set-user-limit", f"Limit max-channels of {user} set")
        row(browser, "user-limits-table", user)
        assert api("GET", f"/vhost-limits/{seg(vhost)}").json()[0]["value"] == {"max-queues": 7}
        assert api("GET", f"/user-limits/{seg(user)}").json()[0]["value"] == {"max-channels": 5}
        shot(browser, "24-admin-limits")
        tr = row(browser, "vhost-limits-table", vhost)
        tr.find_element(By.XPATH, ".//button[text()='Clear']").click()
        wait(browser).until(lambda d: not d.find_elements(By.XPATH, f"//table[@id='vhost-limits-table']//td[text()={xpath_str(vhost)}]"))
        assert api("GET", f"/vhost-limits/{seg(vhost)}").json() == []

        # A policymaker's Admin tab has the policies of their vhosts, and nothing else.
        api("PUT", f"/users/{seg(maker)}", json={"password": "pm", "tags": "policymaker"})
        api("PUT", f"/permissions/{seg(vhost)}/{seg(maker)}", json={"configure": ".*", "write": ".*", "read": ".*"})
        logged_in(browser, maker, "pm")
        browser.find_element(By.CSS_SELECTOR, "a[data-tab=admin]").click()
        wait_text(browser, "#policies-table", "No policies")
        assert not browser.find_elements(By.CSS_SELECTOR, "#operator-policies-table")
        assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, ".subtabs a")] == ["Policies"]
        go(browser, "users")
        wait_text(browser, "#main", "Only administrators can see this page.")
    finally:
        api("DELETE", f"/vhosts/{seg(vhost)}")
        api("DELETE", f"/users/{seg(user)}")
        api("DELETE", f"/users/{seg(maker)}")


# --- definitions ---------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_definitions_download_and_upload(browser, downloads):
    vhost = name("defs")
    try:
        logged_in(browser)
        go(browser, "")
        for f in downloads.glob("*.json"):
            f.unlink()
        submit(browser, "export-definitions", "Definitions downloaded")
        wait(browser).until(lambda d: [f for f in downloads.glob("warren_*.json")])
        path = next(downloads.glob("warren_*.json"))
        wait(browser).until(lambda d: path.stat().st_size > 0 and json.loads(path.read_text()))
        defs = json.loads(path.read_text())
        assert {"users", "vhosts", "permissions", "queues", "exchanges", "bindings"} <= set(defs)
        assert "guest" in [u["name"] for u in defs["users"]]
        # Upload a file that adds a vhost.
        upload = downloads / "upload.json"
        upload.write_text(json.dumps({"vhosts": [{"name": vhost}]}))
        browser.find_element(By.CSS_SELECTOR, "#definitions-file").send_keys(str(upload))
        submit(browser, "import-definitions", "Definitions imported")
        assert api("GET", f"/vhosts/{seg(vhost)}").status_code == 200
        # The header's vhost selector knows it now.
        wait(browser).until(lambda d: vhost in [o.get_attribute("value") for o in d.find_elements(By.CSS_SELECTOR, "#vhost-select option")])
    finally:
        api("DELETE", f"/vhosts/{seg(vhost)}")


# --- connections ---------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_close_a_connection(browser, amqp_url):
    label = name("conn")
    conn = named_connection(amqp_url, label)
    try:
        conn.channel()
        logged_in(browser)
        deadline = time.monotonic() + WAIT
        listed = []
        while not listed and time.monotonic() < deadline:
            listed = [c for c in api("GET", "/connections").json() if c.get("user_provided_name") == label]
        (c,) = listed
        go(browser, "connections")
        row(browser, "connections-table", label)
        shot(browser, "12-connections")
        go(browser, f"connections/{seg(c['name'])}")
        row(browser, "connection-channels", "(1)")
        wait_text(browser, "#main", "Pika")
        shot(browser, "14-connection")
        form = find(browser, "#close-connection")
        fill(form, "input[name=reason]", "closed by the web UI test")
        submit(browser, "close-connection")
        accept_confirm(browser)
        wait_text(browser, "#flash", "Connection closed")
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                conn.process_data_events(time_limit=0.2)
        assert e.value.reply_code == 320
        assert "closed by the web UI test" in e.value.reply_text
    finally:
        if conn.is_open:
            conn.close()


# --- the alarm banner, on a Warren of its own ----------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def alarmed_warren():
    """A Warren started here over its memory watermark (1 MiB: the alarm is raised at
    once), with its own AMQP and management ports and storage."""
    binary = Path(os.environ.get("WEBUI_WARREN_BIN", REPO / "target" / "release" / "warren"))
    if not binary.exists():
        pytest.skip(f"{binary} is not built (cargo build --release --bin warren)")
    amqp, mgmt = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="webui-alarm-")
    # Warren refuses unknown WARREN_* variables: none is inherited.
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARREN_")}
    env.update(WARREN_AMQP__LISTEN=f"127.0.0.1:{amqp}", WARREN_MGMT__LISTEN=f"127.0.0.1:{mgmt}",
               WARREN_PROMETHEUS__LISTEN="127.0.0.1:0",
               WARREN_STORAGE__DIR=data, WARREN_MEMORY__HIGH_WATERMARK="1MiB")
    proc = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                socket.create_connection(("127.0.0.1", mgmt), timeout=0.5).close()
                socket.create_connection(("127.0.0.1", amqp), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield f"amqp://guest:guest@127.0.0.1:{amqp}/", f"http://127.0.0.1:{mgmt}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.timeout(60)
def test_alarm_banner_and_blocked_connections(browser, alarmed_warren):
    amqp_url, base = alarmed_warren
    conn = named_connection(amqp_url, "ui-blocked-publisher", blocked_connection_timeout=None)
    try:
        ch = conn.channel()
        ch.basic_publish("", "nowhere", b"x")  # read no more: the connection is blocked
        logged_in(browser, base=base)
        banner = find(browser, "#alarms")
        wait_text(browser, "#alarms", "Memory alarm")
        wait_text(browser, "#alarms", "1 connection blocked")
        assert "publishers are blocked" in banner.text
        go(browser, "connections", base=base)
        tr = row(browser, "connections-table", "ui-blocked-publisher")
        wait(browser).until(lambda d: tr.find_element(By.CSS_SELECTOR, ".state-blocked").text == "blocked")
        shot(browser, "40-alarm-connections")
        go(browser, "", base=base)
        wait_text(browser, "#nodes", "memory alarm")
        shot(browser, "41-alarm-overview")
    finally:
        # A blocked connection is not read from, so a polite close would wait for ever:
        # its socket is just shut (the fixture then stops that Warren).
        sock = getattr(getattr(conn._impl, "_transport", None), "_sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)


# --- 10 000 queues -------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_ten_thousand_queues_first_page_under_a_second(browser, amqp_url):
    vhost = name("many")
    api("PUT", f"/vhosts/{seg(vhost)}", json={})
    api("PUT", f"/permissions/{seg(vhost)}/guest", json={"configure": ".*", "write": ".*", "read": ".*"})
    try:
        params = pika.URLParameters(amqp_url)
        params.virtual_host = vhost
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        for i in range(10_000):
            ch.queue_declare(f"q-{i:05}")
        conn.close()
        logged_in(browser)
        # A fresh document (not just a hash change): modules, login check, first page.
        browser.get(f"{MGMT_URL}/?fresh=1#/queues")
        ms = wait(browser, 30).until(lambda d: d.execute_script(
            "return document.querySelector('#queues-table tbody tr[data-key]') ? performance.now() : null"))
        wait_text(browser, "#queues .summary", "items")
        print(f"\n10 000 queues: first page rendered {ms:.0f} ms after navigation started")
        assert ms < 1000, f"first page of 10 000 queues took {ms:.0f} ms"
        assert len(browser.find_elements(By.CSS_SELECTOR, "#queues-table tbody tr[data-key]")) == 100
        total = int(browser.find_element(By.CSS_SELECTOR, "#queues .summary").text.split()[0].replace(",", ""))
        assert total >= 10_000
        shot(browser, "15-queues-10000")
        # The last page is reachable through the pager.
        pick = Select(browser.find_element(By.CSS_SELECTOR, "#queues .pager select"))
        last = pick.options[-1].get_attribute("value")
        pick.select_by_value(last)
        wait(browser).until(lambda d: d.find_element(By.CSS_SELECTOR, "#queues .pager select").get_attribute("value") == last)
    finally:
        requests.delete(f"{MGMT_URL}/api/vhosts/{seg(vhost)}", auth=ADMIN, timeout=60)
