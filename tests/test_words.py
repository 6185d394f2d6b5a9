"""The wall's words have one house (issue 14): ``widgets/i18n.py`` holds every (zh, en) pair a
panel or a window of the wall shows, behind the one ``tr``. Read from the source with ``ast``:
no other module under widgets/ or ui/ keeps a word table or a lookup of its own; every key has
both languages; every key the code asks ``tr`` for exists; zh and en take the same values.
(``situation/`` and ``feeds/`` keep their own words, without importing ``widgets``: see the
i18n module's docstring.)"""
from __future__ import annotations

import ast
import re
import string
from pathlib import Path

from widgets.i18n import STRINGS, tr

ROOT = Path(__file__).resolve().parents[1]
I18N = ROOT / "widgets" / "i18n.py"
# the house is i18n.py and the panels' words it reads in (split off when it passed 500 lines)
HOUSE = {I18N, ROOT / "widgets" / "panel_words.py"}
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LOOKUP_NAMES = {"t", "tr"}


def wall_modules() -> list[Path]:
    files = sorted((ROOT / "widgets").rglob("*.py")) + sorted((ROOT / "ui").rglob("*.py"))
    assert files
    return files


def parsed() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"), str(p))) for p in wall_modules()]


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


def _str(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def is_word_pair(node: ast.AST) -> bool:
    """A tuple of two or more strings, one of them Chinese and one not: ("超期", "overdue")."""
    if not isinstance(node, ast.Tuple):
        return False
    texts = [_str(e) for e in node.elts]
    texts = [t for t in texts if t is not None]
    return (len(texts) >= 2 and any(CJK.search(t) for t in texts)
            and any(not CJK.search(t) for t in texts))


# ---- (a) one house ---------------------------------------------------------------------------

def test_no_word_tables_or_lookups_outside_i18n():
    found = []
    for path, tree in parsed():
        if path in HOUSE:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict) and any(is_word_pair(v) for v in node.values):
                found.append(f"{where(path, node)}: a dict of (zh, en) words")
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None \
                    and is_word_pair(node.value):
                found.append(f"{where(path, node)}: a (zh, en) pair kept as a name")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                    and node.name in LOOKUP_NAMES:
                found.append(f"{where(path, node)}: def {node.name}(…), a lookup of its own")
    assert not found, "words belong in widgets/i18n.py:\n" + "\n".join(found)


def test_i18n_is_the_only_strings_table():
    """Nobody keeps a STRINGS/…WORDS table of pairs of their own, even one with no Chinese in
    it yet. (training_log's STATUS_WORDS maps codes to situation.catalog's names: no pairs.)"""
    found = []
    for path, tree in parsed():
        if path in HOUSE:
            continue
        for node in ast.walk(tree):
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target] if isinstance(node, ast.AnnAssign) else [])
            for t in targets:
                if isinstance(t, ast.Name) and (t.id == "STRINGS" or t.id.endswith("WORDS")) \
                        and isinstance(node.value, ast.Dict) \
                        and any(isinstance(v, ast.Tuple) for v in node.value.values):
                    found.append(f"{where(path, node)}: {t.id}")
    assert not found, found


def test_situation_and_feeds_do_not_import_widgets():
    found = []
    for folder in ("situation", "feeds"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n == "widgets" or n.startswith("widgets.") or n.startswith("ui.")
                       or n == "ui" for n in names):
                    found.append(where(path, node))
    assert not found, found


# ---- (b) both languages ----------------------------------------------------------------------

def test_every_key_has_zh_and_en():
    bad = [k for k, v in STRINGS.items()
           if not (isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, str) and x
                                                                 for x in v))]
    assert not bad, bad


def test_no_key_is_written_twice():
    """A dict literal keeps the last of two equal keys without a word: the table must not."""
    keys = []
    for path in sorted(HOUSE):          # twice within a file, or once in each
        tree = ast.parse(path.read_text(encoding="utf-8"))
        table = next(n.value for n in tree.body
                     if isinstance(n, (ast.Assign, ast.AnnAssign))
                     and isinstance(n.value, ast.Dict)
                     and any(w in ast.unparse(n.targets[0] if isinstance(n, ast.Assign)
                                              else n.target) for w in ("STRINGS", "WORDS")))
        keys += [_str(k) for k in table.keys]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    assert not twice, twice


# ---- (c) every key asked for exists ----------------------------------------------------------

def tr_calls():
    """(path, node, first argument) of every ``tr(…)`` / ``i18n.tr(…)`` call."""
    for path, tree in parsed():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args and (
                    (isinstance(node.func, ast.Name) and node.func.id == "tr")
                    or (isinstance(node.func, ast.Attribute) and node.func.attr == "tr")):
                yield path, node, node.args[0]


def literal_keys(arg: ast.AST) -> list[str] | None:
    """The keys a literal argument can be: "k", or "a" if … else "b"; None when computed."""
    if _str(arg) is not None:
        return [_str(arg)]
    if isinstance(arg, ast.IfExp):
        a, b = literal_keys(arg.body), literal_keys(arg.orelse)
        return None if a is None or b is None else a + b
    return None


def test_every_literal_key_exists():
    missing, checked, formatted, computed = [], 0, [], 0
    for path, node, arg in tr_calls():
        keys = literal_keys(arg)
        if keys is not None:
            checked += len(keys)
            missing += [f"{where(path, node)}: {k!r}" for k in keys if k not in STRINGS]
        elif isinstance(arg, ast.JoinedStr):
            formatted.append((path, node, arg))
        else:
            computed += 1
    assert not missing, "tr() of keys widgets/i18n.py does not have:\n" + "\n".join(missing)
    assert checked > 150, checked           # the scan found the calls
    # f"heat.win.{w}": the key cannot be known, but its fixed start must begin some key
    bad = []
    for path, node, arg in formatted:
        head = _str(arg.values[0]) if arg.values else None
        if head and not any(k.startswith(head) for k in STRINGS):
            bad.append(f"{where(path, node)}: no key starts with {head!r}")
    assert not bad, bad
    print(f"{checked} literal keys checked; {len(formatted)} f-string keys and {computed} "
          "computed keys not checkable")


# ---- (d) the same values in both languages ---------------------------------------------------

def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_placeholders_agree():
    bad = [f"{k}: zh {sorted(fields(zh))} en {sorted(fields(en))}"
           for k, (zh, en) in STRINGS.items() if fields(zh) != fields(en)]
    assert not bad, "\n".join(bad)


def test_every_entry_formats_in_both_languages():
    for key, (zh, _) in STRINGS.items():
        names = fields(zh)
        if not names:
            continue
        values = {n: 1 for n in names}
        for lang in ("zh", "en"):
            assert "{" not in tr(key, lang, **values).replace("{{", ""), (key, lang)


def test_tr_reads_the_table():
    assert tr("peak.needed", "zh") == STRINGS["peak.needed"][0]
    assert tr("heat.sum.days", "en", days=7) == " · 7-day average"
    assert tr("no such key", "en") == "no such key"
