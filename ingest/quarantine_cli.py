"""``reallabor quarantine list|show|stats|replay``: formatting helpers and the argparse wiring.

The formatters are pure (records in, text or JSON out). :func:`add_parser` adds the subcommand to the
``reallabor`` parser in :mod:`ingest.cli`; each command returns an exit code (0 ok, 1 not found / cannot
open, 2 bad configuration), like the other commands there.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.quarantine import (
    QUARANTINE_FILE,
    Quarantine,
    QuarantineError,
    QuarantineRecord,
    QuarantineStats,
)

PREVIEW_CHARS = 48


def iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def payload_text(payload: bytes) -> str | None:
    """The payload as text if it is valid UTF-8, else ``None``."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def preview(payload: bytes, width: int = PREVIEW_CHARS) -> str:
    """One line: the text with control characters escaped, or ``hex:...`` for binary payloads."""
    text = payload_text(payload)
    shown = repr(text)[1:-1] if text is not None else "hex:" + payload.hex()
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def hexdump(payload: bytes) -> str:
    lines = []
    for offset in range(0, len(payload), 16):
        chunk = payload[offset : offset + 16]
        ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {chunk.hex(' '):<47}  |{ascii_}|")
    return "\n".join(lines)


def record_json(record: QuarantineRecord, *, payload: bool = True) -> dict[str, Any]:
    """A JSON-ready dict; the payload as base64 (exact) and as text when it is valid UTF-8."""
    out: dict[str, Any] = {
        "id": record.id,
        "status": record.status,
        "reason": record.reason,
        "detail": record.detail,
        "topic": record.topic,
        "profile": record.profile,
        "received": iso(record.received_ns),
        "received_ns": record.received_ns,
        "quarantined": iso(record.quarantined_ns),
        "quarantined_ns": record.quarantined_ns,
        "replayed_ns": record.replayed_ns,
        "payload_bytes": len(record.payload),
    }
    if payload:
        out["payload_text"] = payload_text(record.payload)
        out["payload_base64"] = base64.b64encode(record.payload).decode("ascii")
    return out


def format_list(records: list[QuarantineRecord], *, as_json: bool = False) -> str:
    if as_json:
        return json.dumps([record_json(r, payload=False) for r in records], indent=2)
    if not records:
        return "no quarantined messages"
    rows = [("ID", "STATUS", "QUARANTINED", "REASON", "BYTES", "TOPIC", "PAYLOAD")]
    rows += [
        (
            str(r.id),
            r.status,
            iso(r.quarantined_ns) or "",
            r.reason,
            str(len(r.payload)),
            r.topic,
            preview(r.payload),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    )


def format_show(record: QuarantineRecord, *, as_json: bool = False) -> str:
    if as_json:
        return json.dumps(record_json(record), indent=2)
    fields = record_json(record, payload=False)
    lines = [f"{key:15} {'-' if value is None else value}" for key, value in fields.items()]
    text = payload_text(record.payload)
    if text is not None and all(c.isprintable() or c in "\t\r\n" for c in text):
        lines += ["payload (UTF-8):", text]
    else:
        lines += ["payload (hex):", hexdump(record.payload)]
    return "\n".join(lines)


def format_stats(stats: QuarantineStats, *, as_json: bool = False) -> str:
    if as_json:
        return json.dumps(stats, indent=2)
    width = max([len("REASON"), *(len(reason) for reason in stats["by_reason"])])
    lines = [f"{'REASON':{width}}  PENDING"]
    lines += [f"{reason:{width}}  {n}" for reason, n in stats["by_reason"].items()]
    lines.append(f"pending {stats['pending']}, replayed {stats['replayed']}, total {stats['total']}")
    return "\n".join(lines)


# -- argparse wiring ----------------------------------------------------------------------------------


def database_paths(args: argparse.Namespace) -> dict[str, Path]:
    """The quarantine files to read, by instance (``""``: ``ingest.state_dir``'s own, ``instance-K``).

    ``--db``, else those of the settings found by :func:`ingest.cli.find_settings` (``--config``,
    ``$REALLABOR_CONFIG``, the demo's, the defaults): ``--instance K``'s, or every one there is of
    :meth:`ingest.config.Settings.state_dirs` (several ingesters, retired ones included). The first is
    named in the error when there is none.
    """
    if args.db is not None:
        return {"": Path(args.db)}
    from ingest.cli import find_settings
    from ingest.config import INSTANCE_DIR

    settings = find_settings(args.config)
    base = Path(settings.ingest.state_dir)
    if args.instance is not None:
        chosen = INSTANCE_DIR.format(instance=args.instance)
        return {chosen: base / chosen / QUARANTINE_FILE}
    found = {
        "" if directory == base else directory.name: directory / QUARANTINE_FILE
        for directory in settings.state_dirs()
    }
    present = {label: path for label, path in found.items() if path.exists()}
    return present or {"": base / QUARANTINE_FILE}


def _run(args: argparse.Namespace, action: Callable[[dict[str, Quarantine]], int]) -> int:
    """``action`` on the quarantines to read (:func:`database_paths`), opened read-only."""
    from ingest.config import ConfigError

    try:
        paths = database_paths(args)
        with contextlib.ExitStack() as stack:
            opened = {}
            for label, path in paths.items():
                if not path.exists():
                    raise QuarantineError(f"no quarantine database at {path}")
                opened[label] = stack.enter_context(Quarantine(path, read_only=True))
            return action(opened)
    except ConfigError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        return 2
    except QuarantineError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        return 1


def cmd_list(args: argparse.Namespace) -> int:
    def action(quarantines: dict[str, Quarantine]) -> int:
        listed = {
            label: q.list(
                reason=args.reason,
                topic_like=args.topic,
                since_ns=args.since_ns,
                status=None if args.all else "pending",
                limit=args.limit,
                offset=args.offset,
                newest_first=args.newest_first,
            )
            for label, q in quarantines.items()
        }
        if len(listed) == 1:
            print(format_list(next(iter(listed.values())), as_json=args.json))
        elif args.json:  # each entry says whose it is: the ids are counted per instance
            entries = [
                {"instance": label, **record_json(r, payload=False)}
                for label, records in listed.items()
                for r in records
            ]
            print(json.dumps(entries, indent=2))
        else:
            sections = (f"{_title(label)}:\n{format_list(records)}" for label, records in listed.items())
            print("\n\n".join(sections))
        return 0

    return _run(args, action)


def _title(label: str) -> str:
    return label or "ingest.state_dir (from before there were several instances)"


def cmd_show(args: argparse.Namespace) -> int:
    def action(quarantines: dict[str, Quarantine]) -> int:
        found = {label: record for label, q in quarantines.items() if (record := q.get(args.id)) is not None}
        if not found:
            print(f"reallabor: no quarantined message with id {args.id}", file=sys.stderr)
            return 1
        if len(found) > 1:
            print(
                f"reallabor: id {args.id} is in the quarantines of {', '.join(map(_title, found))}: "
                "choose one with --instance K",
                file=sys.stderr,
            )
            return 1
        print(format_show(next(iter(found.values())), as_json=args.json))
        return 0

    return _run(args, action)


def cmd_stats(args: argparse.Namespace) -> int:
    def action(quarantines: dict[str, Quarantine]) -> int:
        each = {label: q.stats() for label, q in quarantines.items()}
        print(format_stats(_summed(list(each.values())), as_json=args.json))
        if len(each) > 1 and not args.json:
            print("; ".join(f"{_title(label)}: pending {s['pending']}" for label, s in each.items()))
        return 0

    return _run(args, action)


def _summed(each: list[QuarantineStats]) -> QuarantineStats:
    by_reason: Counter[str] = Counter()
    for stats in each:
        by_reason.update(stats["by_reason"])
    return QuarantineStats(
        by_reason=dict(sorted(by_reason.items())),
        pending=sum(s["pending"] for s in each),
        replayed=sum(s["replayed"] for s in each),
        total=sum(s["total"] for s in each),
    )


def cmd_replay(args: argparse.Namespace) -> int:
    from ingest.cli import find_settings
    from ingest.config import ConfigError
    from ingest.replay import ReplayReport, run_replay

    try:
        settings = find_settings(args.config)
        report = ReplayReport()
        for path in database_paths(args).values():
            with Quarantine(path) as quarantine:
                each = run_replay(settings, quarantine, reason=args.reason, ids=args.ids)
            report.replayed += each.replayed
            report.points += each.points
            report.still_rejected.update(each.still_rejected)
    except ConfigError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        return 2
    except QuarantineError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        return 1
    print(
        json.dumps(report.as_dict())
        if args.json
        else f"replayed {report.replayed} messages ({report.points} points); still rejected: "
        f"{dict(report.still_rejected) or 'none'}"
    )
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``quarantine list|show|stats`` to the subparsers ``sub`` of the ``reallabor`` parser."""
    quarantine: argparse.ArgumentParser = sub.add_parser("quarantine", help="inspect quarantined messages")
    actions = quarantine.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        help="settings YAML, for ingest.state_dir (default: $REALLABOR_CONFIG, else the demo's "
        "state/demo/ingest.yaml if there)",
    )
    common.add_argument(
        "--db",
        type=Path,
        help=f"quarantine database (default: <state_dir>/{QUARANTINE_FILE}, with several ingesters each "
        f"one's <state_dir>/instance-K/{QUARANTINE_FILE})",
    )
    common.add_argument(
        "--instance", type=int, metavar="K", help="only the quarantine of ingester instance K (several)"
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")

    list_ = actions.add_parser("list", parents=[common], help="quarantined messages, oldest first")
    list_.add_argument("--reason", help="only this reason code")
    list_.add_argument("--topic", help="SQL LIKE pattern on the topic, e.g. 'tele/%%/SENSOR'")
    list_.add_argument("--since-ns", type=int, help="received at or after this time (ns since epoch)")
    list_.add_argument("--all", action="store_true", help="include replayed messages")
    list_.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    list_.add_argument("--offset", type=int, default=0, help="skip this many first (paging)")
    list_.add_argument("--newest-first", action="store_true", help="newest first instead of oldest")
    list_.set_defaults(func=cmd_list)

    show = actions.add_parser("show", parents=[common], help="one message with its exact payload")
    show.add_argument("id", type=int, help="the message's id (see quarantine list)")
    show.set_defaults(func=cmd_show)

    stats = actions.add_parser("stats", parents=[common], help="pending messages by reason, and totals")
    stats.set_defaults(func=cmd_stats)

    replay = actions.add_parser(
        "replay",
        parents=[common],
        help="re-decode pending messages with the current profiles; write those that now decode",
    )
    replay.add_argument("--reason", help="only this reason code")
    replay.add_argument("--id", type=int, action="append", dest="ids", help="only this entry (repeatable)")
    replay.set_defaults(func=cmd_replay)
    return quarantine
