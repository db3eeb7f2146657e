"""The link's page: a preview for chat apps, and what it shows escaped, never run."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from .conftest import make_share


class Metas(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "meta" and "content" in attrs:
            self.found[attrs.get("property") or attrs.get("name") or ""] = attrs["content"]


def test_the_page_carries_open_graph_tags_for_a_preview(author, viewer):
    function = author.new_function(memory_mb=256)
    made = make_share(author, function["id"], status=201, title="Cold starts, explained")
    page = viewer.http.get(f"/s/{made['id']}")
    assert page.status_code == 200
    metas = Metas()
    metas.feed(page.content.decode())
    assert metas.found["og:title"] == "Cold starts, explained"
    assert metas.found["og:type"] == "website"
    assert metas.found["og:url"] == made["url"] == f"http://localhost/s/{made['id']}"
    assert "256 MB" in metas.found["og:description"]
    assert metas.found["twitter:card"] == "summary"


def test_a_title_or_code_with_a_script_is_shown_as_text(author, viewer):
    title = '<script>alert("title")</script>'
    code = "def lambda_handler(e, c):\n    return \"</script><script>alert('code')</script>\"\n"
    function = author.new_function(code=code, event='{"x": "</script><img src=x onerror=alert(1)>"}')
    made = make_share(author, function["id"], status=201, title=title)
    html = viewer.http.get(f"/s/{made['id']}").content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;title&quot;)&lt;/script&gt;" in html
    assert "&lt;/script&gt;&lt;script&gt;alert(&#x27;code&#x27;)&lt;/script&gt;" in html
    # the page's data for its script is JSON with "<" escaped: no tag can close its <script>
    boot = re.search(r'<script id="share-boot" type="application/json">(.*?)</script>', html, re.S).group(1)
    assert "<" not in boot


def test_an_unknown_link_is_a_404_page(viewer):
    assert viewer.http.get("/s/AAAAAAAAAAA").status_code == 404
    assert (
        viewer.call("GET", "/api/shares/AAAAAAAAAAA", status=404)["error"]["type"]
        == "ResourceNotFoundException"
    )
    assert viewer.http.get("/s/too-short").status_code == 404
