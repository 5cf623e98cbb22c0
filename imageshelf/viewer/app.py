"""The viewer's pages and pictures: a Flask app over read-only stores. Every route is a
GET; every value from a store is escaped by Jinja's autoescaping; a key is only ever
looked up in a store, never joined to a path; a key the version lacks is a 404. Any key
a store holds has its pages: in a URL it is percent-encoded (a newline as %0A), and the
routes match every character. A request borrows the stores it reads and gives them back
when it ends (stores.py closes a retired one then)."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, abort, current_app, g, render_template, request, url_for
from werkzeug.routing import PathConverter

from ..errors import ShelfError
from ..project.params import ParamsError
from ..quality.audit import finding_conditions
from ..quality.findings import KINDS, UnknownFinding
from ..read.query import QueryError
from ..store import ImageStore, Record, StoreError
from ..versions.catalog import CatalogError
from ..versions.history import VersionError
from . import decide, gallery, numbers, quality
from .hosts import Hosts
from .masks import OPACITY, Overlays, changed_roles, views
from .shapes import categories, drawing
from .stores import WORKSPACE, Opened, Versions, ViewError, check_revision
from .thumbs import BROWSER_TYPES, UNKNOWN_TILE, NotAnImageError, Thumbnails

# No inline script or style anywhere: even a label that escaped escaping could not run.
POLICY = (
    "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
FIELDS_SHOWN = ("label", "text", "category")  # under a thumbnail, the first one present
SENT_AT_ONCE = 1 << 20  # an original is written in pieces: the socket's timeout is per piece


class KeyConverter(PathConverter):
    """A key in a route: any characters, a newline or other control character included
    (werkzeug's `path` stops at a newline, so such a key was listed but never opened)."""

    regex = r"[^/][\s\S]*?"
    part_isolating = False


def create_app(
    versions: Versions,
    thumbnails: Thumbnails,
    default: str = WORKSPACE,
    diff: tuple[str, str] | None = None,
    hosts: Hosts | None = None,
    desk: decide.Desk | None = None,
) -> Flask:
    """The app. `default`: the version shown when a page names none; `diff`: the two
    versions /diff compares when the page names none; `hosts`: the Host headers to
    answer (None: any, for a test's own client only); `desk`: where decisions are
    written (None: nowhere, no forms)."""
    app = Flask(__name__)
    app.url_map.converters["key"] = KeyConverter
    app.config.update(
        versions=versions,
        thumbnails=thumbnails,
        overlays=Overlays(thumbnails.folder, thumbnails.max_pixels),  # the same cache
        default=default,
        diff=diff,
        hosts=hosts,
        desk=desk or decide.Desk.nowhere(),
    )
    _guard(app)
    _lending(app)
    _routes(app)
    _quality_routes(app)
    _diff_route(app)
    _numbers_route(app)
    decide.register(app)
    _pictures(app)
    _paired(app)
    app.add_template_global(_link, "link")
    app.jinja_env.globals["overlay_opacity"] = OPACITY
    # Plain JSON text, escaped by autoescaping like any text (Flask's `tojson` is for
    # scripts: it writes < as \u003c, which a reader should not see).
    app.add_template_filter(lambda value: json.dumps(value, ensure_ascii=False), "json_text")
    app.add_template_filter(key_text, "key_text")
    app.add_template_filter(quality.number, "number")
    return app


def key_text(key: str) -> str:
    """A key as text to read: a control character written as an escape (`\\n`), so
    that `a\\nb.png` and `a b.png` look different."""
    if key.isprintable():
        return key
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in key)


def _guard(app: Flask) -> None:
    @app.before_request
    def only_this_host() -> None:
        hosts: Hosts | None = app.config["hosts"]
        if hosts is None:
            return
        connection = request.environ.get("werkzeug.socket")
        local = connection.getsockname()[0] if connection is not None else None
        if not hosts.accepts(request.headers.get("Host", ""), local):  # DNS rebinding
            abort(
                400,
                "this viewer answers only to its own address: open it at the address it "
                "printed, or start it with --allow-host NAME to answer to that name",
            )

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        # same-origin, not no-referrer: under no-referrer a browser sends a form's POST
        # with `Origin: null`, and decide.py could not tell its own pages from another
        # site's. Other sites still learn nothing of the viewer's addresses.
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    @app.errorhandler(ShelfError)
    def shelf_error(exc: ShelfError) -> tuple[str, int]:
        bad_request = isinstance(
            exc, QueryError | ViewError | CatalogError | VersionError | UnknownFinding
        )
        return render_template("error.html", message=str(exc)), 400 if bad_request else 500

    @app.errorhandler(gallery.CursorError)
    @app.errorhandler(quality.CursorError)
    def cursor_error(exc: ValueError) -> tuple[str, int]:
        return render_template("error.html", message=str(exc)), 400

    @app.errorhandler(404)
    @app.errorhandler(400)
    @app.errorhandler(405)
    def http_error(exc: Any) -> tuple[str, int]:
        return render_template("error.html", message=exc.description), exc.code

    @app.errorhandler(500)
    def internal_error(exc: Any) -> tuple[str, int]:  # a bug: said in one line, logged
        cause = getattr(exc, "original_exception", None) or exc
        message = f"internal error: {type(cause).__name__}: {cause}"
        return render_template("error.html", message=message), 500


def _version() -> str:
    return check_revision(request.args.get("v") or _config("default"))


def _config(name: str) -> Any:
    return current_app.config[name]


def _lending(app: Flask) -> None:
    @app.teardown_request
    def give_back(exc: BaseException | None) -> None:
        versions: Versions = app.config["versions"]
        for opened in g.pop("borrowed", ()):
            versions.give_back(opened)


def _borrow(version: str) -> Opened:
    """The open store of `version`, held until this request ends."""
    opened: Opened = _config("versions").borrow(version)
    g.setdefault("borrowed", []).append(opened)
    return opened


def _store(version: str) -> ImageStore:
    return _borrow(version).store


def _where() -> list[str]:
    """The filter: every `where` argument, each split on ";" (the box holds several)."""
    found = [c.strip() for w in request.args.getlist("where") for c in w.split(";")]
    return [c for c in found if c]


def _sort() -> str:
    sort = request.args.get("sort", "key")
    if sort not in gallery.SORTS:
        abort(400, f"sort by one of: {', '.join(gallery.SORTS)}")
    return sort


def _link(endpoint: str, **values: Any) -> str:
    """url_for, keeping the page's version, filter and order unless told otherwise."""
    keep = {
        "v": request.args.get("v"),
        "where": "; ".join(_where()) or None,
        "sort": request.args.get("sort"),
    }
    merged = {k: v for k, v in {**keep, **values}.items() if v not in (None, "")}
    if merged.get("sort") == "key":
        del merged["sort"]  # the default order
    return url_for(endpoint, **merged)


def _record(store: ImageStore, key: str) -> Record:
    try:
        return store.record(key)
    except KeyError:
        abort(404, f"no image {key!r} in this version")


def shown(record: Record) -> str:
    """The text under a thumbnail: its label (or text, category), else the categories of
    its objects (a detection dataset has no label), else nothing."""
    for name in FIELDS_SHOWN:
        value = record.metadata.get(name)
        if value is not None:
            return str(value)
    return ", ".join(categories(record.metadata))


def _routes(app: Flask) -> None:
    @app.get("/")
    def index() -> tuple[str, int]:
        version, where, sort = _version(), _where(), _sort()
        opened = _borrow(version)
        store = opened.store
        problem, matched = None, None
        try:
            on_records, chosen = _selection(opened, where)
            found = gallery.page(store, on_records, sort, request.args.get("after"), chosen=chosen)
            keys = gallery.matching_keys(store, on_records) if chosen is None else None
            matched = None if keys is None else len(keys)  # from the columnar catalog
        except (QueryError, UnknownFinding, ParamsError) as exc:  # said beside the box
            found, problem = gallery.Page([], None), str(exc)
        desk: decide.Desk = _config("desk")
        page = render_template(
            "gallery.html",
            writable=not desk.read_only and version == WORKSPACE,
            problem=problem,
            version=version,
            store=store,
            where="; ".join(where),
            sort=sort,
            sorts=gallery.SORTS,
            page=found,
            counts=_counts(opened),
            matched=matched,
            shown=shown,
            first=not request.args.get("after"),
            diff=_config("diff"),
        )
        return page, 400 if problem else 200

    @app.get("/image/<key:key>")
    def image(key: str) -> str:
        version, where, sort = _version(), _where(), _sort()
        opened = _borrow(version)
        store = opened.store
        record = _record(store, key)
        on_records, chosen = _selection(opened, where)
        previous, following = gallery.neighbours(store, on_records, sort, record, chosen)
        named, unnamed = _named(opened, record)
        deciding = _deciding(version, store, record)
        return render_template(
            "image.html",
            **deciding,
            version=version,
            record=record,
            # what is decided shows at once: a box deleted is no longer drawn
            drawing=drawing(deciding.get("effective", record.metadata)),
            browser_type=BROWSER_TYPES.get(record.info.format),
            previous=previous,
            following=following,
            fields=record.fields(),
            where="; ".join(where),
            masks=views(_config("overlays"), store, record),
            named=named,
            unnamed=unnamed,
        )


def _named(opened: Opened, record: Record) -> tuple[quality.Named, str | None]:
    """What names the image (quality.named), and why nothing does where params.yaml
    cannot be read: that costs the findings, not the page."""
    try:
        return quality.named(opened.memo, opened.store, quality.project_params(), record), None
    except ParamsError as exc:
        return quality.Named([]), str(exc)


def _deciding(version: str, store: ImageStore, record: Record) -> dict[str, Any]:
    """What the image page's forms need: whether it has them (the workspace, not
    read-only), the fields decided but not yet applied, the image's fields with them,
    its objects, and the store's split names."""
    desk: decide.Desk = _config("desk")
    if desk.read_only or version != WORKSPACE:
        return {"writable": False}
    pending = decide.pending_fields(desk, record.key)
    effective = {**record.metadata, **pending}
    objects = effective.get("objects")
    return {
        "writable": True,
        "pending": pending,
        "effective": effective,
        "objects": objects if isinstance(objects, list) else [],
        "splits": sorted((store.value_counts("split") or {}).keys()),
    }


def _selection(opened: Opened, where: list[str]) -> tuple[list[str], gallery.Chosen | None]:
    """(the conditions on records, the keys the conditions on findings select): a
    filter naming a finding (`leaks=true`) is read as `--where` reads it in ls and
    export (quality/audit.py), from the version's audit, made once."""
    on_records, wanted = finding_conditions(where)
    if not wanted:
        return on_records, None
    found = quality.audited(opened.memo, opened.store, quality.project_params())
    return on_records, found.chosen(wanted)


def _quality_routes(app: Flask) -> None:
    @app.get("/quality")
    def quality_summary() -> str:
        version = _version()
        opened = _borrow(version)
        found = quality.audited(opened.memo, opened.store, quality.project_params())
        metrics = found.metrics
        return render_template(
            "quality.html",
            version=version,
            store=opened.store,
            params=found.params,
            total=metrics["total"],
            splits=metrics["splits"],
            leak_pairs=metrics["leak_pairs"],
            kinds=quality.KINDS_SHOWN,
            counted=quality.COUNTED,
            rule_of=quality.rule_of,
        )

    @app.get("/quality/<kind>")
    def quality_kind(kind: str) -> str:
        if kind not in KINDS:
            abort(404, f"no finding is called {kind!r}; the findings: {', '.join(KINDS)}")
        version = _version()
        opened = _borrow(version)
        found = quality.audited(opened.memo, opened.store, quality.project_params())
        after = request.args.get("after")
        shown: dict[str, Any] = {}
        items: list[Any]
        if kind == "leaks":
            pair = request.args.get("pair") or None
            if pair is not None and pair not in found.metrics["leak_pairs"]:
                abort(404, f"no split pair {pair!r} in this version")
            items, more = found.leaks(pair).page(after, quality.PAGE_LEAKS)
            shown = {"pair": pair, "pairs": found.metrics["leak_pairs"]}
        elif kind in quality.COUNTED:
            items, more = found.groups(kind).page(after, quality.PAGE_GROUPS)
            shown = {"groups": found.metrics["total"][quality.COUNTED[kind]]}
        else:
            ranked = found.issue(opened.store, kind)
            items, more = ranked.page(after, quality.PAGE_IMAGES)
            rule = quality.RULES[kind]
            shown = {"rule": rule, "limit": rule.limit(found.params)}
        desk: decide.Desk = _config("desk")
        return render_template(
            quality.pages(kind),
            writable=not desk.read_only and version == WORKSPACE,
            version=version,
            kind=kind,
            items=items,
            more=more,
            first=not after,
            count=found.metrics["total"][kind],
            threshold=quality.rule_of(kind, found.params),
            **shown,
        )


def _numbers_route(app: Flask) -> None:
    @app.get("/numbers")
    def numbers_page() -> str:
        version = _version()
        opened = _borrow(version)
        if "numbers" not in opened.memo:
            versions = _config("versions")
            opened.memo["numbers"] = numbers.counted(
                version, opened.store, versions.catalog, version == WORKSPACE
            )
        return render_template("numbers.html", version=version, numbers=opened.memo["numbers"])


def _diff_route(app: Flask) -> None:
    @app.get("/diff")
    def diff() -> str:
        a, b = _diff_pair()
        changes = _config("versions").diff(a, b)
        section = request.args.get("section")
        after = request.args.get("after") or ""
        sections = {
            "relabeled": changes.relabeled,
            "changed": changes.changed,
            "added": changes.added,
            "removed": changes.removed,
        }
        if section is not None and section not in sections:
            abort(400, f"a section is one of: {', '.join(sections)}")
        return render_template(
            "diff.html",
            a=a,
            b=b,
            sections=_diff_sections(sections, section, after),
            drawing=drawing,
            shown=shown,
            changes=_field_changes,
            changed_roles=changed_roles,
        )


def _diff_pair() -> tuple[str, str]:
    default = _config("diff") or ("HEAD", WORKSPACE)
    a = check_revision(request.args.get("a") or default[0])
    b = check_revision(request.args.get("b") or default[1])
    return a, b


def _diff_sections(
    sections: dict[str, list[Any]], only: str | None, after: str
) -> list[tuple[str, int, list[Any], str | None]]:
    """(name, how many, the page shown, the cursor of the next) of each section."""
    out = []
    for name, items in sections.items():
        if only is not None and name != only:
            continue
        keyed = [i for i in items if _key_of(i) > after]
        page = keyed[: gallery.PAGE]
        more = _key_of(page[-1]) if len(keyed) > gallery.PAGE else None
        out.append((name, len(items), page, more))
    return out


def _key_of(item: Record | tuple[Record, Record]) -> str:
    return item[1].key if isinstance(item, tuple) else item.key


def _field_changes(old: Record, new: Record) -> list[tuple[str, Any, Any]]:
    from ..versions.catalog import field_changes

    rows = [(name, a, b) for name, (a, b) in field_changes(old, new).items()]
    return sorted(rows, key=lambda row: row[0])


def _counts(opened: Opened) -> dict[str, list[tuple[str, int]]]:
    """Images per label and per split, from the store's field index (a field not
    indexed is not counted: that would read every record); once per store opened (a
    million postings take a few tenths of a second)."""
    if "counts" not in opened.memo:
        out = {}
        for name in ("label", "split"):
            counts = opened.store.value_counts(name)
            if counts:
                out[name] = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        opened.memo["counts"] = out
    counted: dict[str, list[tuple[str, int]]] = opened.memo["counts"]
    return counted


def _pictures(app: Flask) -> None:
    @app.get("/original/<key:key>")
    def original(key: str) -> Response:
        store = _store(_version())
        record = _record(store, key)
        kind = BROWSER_TYPES.get(record.info.format)
        data = store.get(key)
        response = Response(_pieces(data), mimetype=kind or "application/octet-stream")
        response.content_length = len(data)
        if kind is None:  # TIFF, JPEG 2000, PSD...: the stored bytes, to save
            response.headers["Content-Disposition"] = attachment(key)
        response.headers["Cache-Control"] = "private, max-age=3600"
        return response

    @app.get("/thumb/<key:key>")
    def thumb(key: str) -> Response:
        return _picture(key, lambda data: _config("thumbnails").thumbnail(data))

    @app.get("/rendering/<key:key>")
    def rendering(key: str) -> Response:
        return _picture(key, lambda data: _config("thumbnails").rendering(data))


def _pieces(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), SENT_AT_ONCE):
        yield data[start : start + SENT_AT_ONCE]


def attachment(key: str) -> str:
    """The Content-Disposition of a download named as the key's last part (RFC 6266):
    the name in UTF-8, percent-encoded (RFC 5987), and a plain ASCII one for old
    clients. A header is Latin-1: a name such as `猫.tif` written as it is fails to
    encode, and the response is never sent."""
    name = key.rsplit("/", 1)[-1]
    fallback = "".join(
        c if " " <= c <= "~" and c not in '"\\%' else "_"
        for c in unicodedata.normalize("NFKD", name)
        if not unicodedata.combining(c)  # é: e and an accent; the e is kept
    )
    encoded = quote(name, safe="!#$&+^`|")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def _picture(key: str, make: Any, role: str | None = None) -> Response:
    """A picture made from the image `key` (or from its paired image `role`), or the
    "?" tile with the reason in a header."""
    store = _store(_version())
    record = _record(store, key)
    if role is not None:
        _paired_info(record, role)
    try:
        data, kind = make(store.get(key) if role is None else store.get_paired(key, role))
    except (NotAnImageError, StoreError) as exc:
        response = Response(UNKNOWN_TILE, mimetype="image/svg+xml")
        problem = " ".join(str(exc).split())[:200]
        response.headers["X-Imageshelf-Problem"] = problem.encode("ascii", "replace").decode()
        return response
    response = Response(_pieces(data), mimetype=kind)  # a rendering can be megabytes
    response.content_length = len(data)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


def _role() -> str:
    role = request.args.get("role")
    if not role:
        abort(400, "name the paired image: ?role=mask (the image page lists its roles)")
    return role


def _paired_info(record: Record, role: str) -> Any:
    """The record's paired image `role`; 404 if it has none of that role."""
    paired = record.paired.get(role)
    if paired is None:
        abort(404, f"no paired image {role!r} with {record.key!r} in this version")
    return paired


def _paired(app: Flask) -> None:
    @app.get("/paired/<key:key>")
    def paired(key: str) -> Response:
        """The paired image's stored bytes, to save, named as the file it arrived as."""
        store = _store(_version())
        role = _role()
        info = _paired_info(_record(store, key), role)
        data = store.get_paired(key, role)
        kind = BROWSER_TYPES.get(info.info.format, "application/octet-stream")
        response = Response(_pieces(data), mimetype=kind)
        response.content_length = len(data)
        response.headers["Content-Disposition"] = attachment(info.file)
        response.headers["Cache-Control"] = "private, max-age=3600"
        return response

    @app.get("/overlay/<key:key>")
    def overlay(key: str) -> Response:
        """The paired image drawn for laying over the image (masks.py): a PNG, at
        most 256 pixels a side with ?size=small (over a thumbnail)."""
        small = request.args.get("size") == "small"
        overlays: Overlays = _config("overlays")
        return _picture(key, lambda data: (overlays.overlay(data, small), "image/png"), _role())
