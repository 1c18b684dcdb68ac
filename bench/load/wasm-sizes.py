#!/usr/bin/env python3
"""Where a Wasm binary's bytes go, without twiggy: parses the code, data and name sections of a
(not stripped) cargo build and sums function body sizes by crate and by function.

Usage: wasm-sizes.py --sections FILE.wasm...   section sizes only
       wasm-sizes.py FILE.wasm [TOP]            where FILE's bytes go
       wasm-sizes.py FILE.wasm BASE.wasm [TOP]  what FILE has that BASE (e.g. a hello world) has not
Sizes are raw (before wasm-opt and gzip); use them for proportions, not for the shipped size."""
import re
import sys
from collections import defaultdict


def leb(data, at):
    """Unsigned LEB128 at `at`: (value, next offset)."""
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def sections(data):
    assert data[:4] == b"\0asm", "not a wasm file"
    at = 8
    while at < len(data):
        kind = data[at]
        size, start = leb(data, at + 1)
        yield kind, data[start:start + size]
        at = start + size


def imported_functions(body):
    count, at = leb(body, 0)
    functions = 0
    for _ in range(count):
        for _ in range(2):  # module and field names
            length, at = leb(body, at)
            at += length
        kind = body[at]
        at += 1
        if kind == 0:  # function: type index
            _, at = leb(body, at)
            functions += 1
        elif kind == 1:  # table: reftype, limits
            at += 1
            flags, at = leb(body, at)
            _, at = leb(body, at)
            if flags & 1:
                _, at = leb(body, at)
        elif kind == 2:  # memory: limits
            flags, at = leb(body, at)
            _, at = leb(body, at)
            if flags & 1:
                _, at = leb(body, at)
        elif kind == 3:  # global: valtype, mutability
            at += 2
        elif kind == 4:  # tag
            at += 1
            _, at = leb(body, at)
    return functions


def function_names(body):
    names = {}
    at = 0
    length, at = leb(body, at)
    if body[at:at + length] != b"name":
        return names
    at += length
    while at < len(body):
        sub = body[at]
        size, at = leb(body, at + 1)
        end = at + size
        if sub == 1:
            count, p = leb(body, at)
            for _ in range(count):
                index, p = leb(body, p)
                length, p = leb(body, p)
                names[index] = body[p:p + length].decode("utf-8", "replace")
                p += length
        at = end
    return names


ESCAPES = {"$LT$": "<", "$GT$": ">", "$RF$": "&", "$BP$": "*", "$C$": ",", "$SP$": "@",
           "$LP$": "(", "$RP$": ")", "$u20$": " ", "$u7b$": "{", "$u7d$": "}", "$u27$": "'",
           "$u5b$": "[", "$u5d$": "]", "$u7e$": "~", "$u3b$": ";", "$u2b$": "+", "$u22$": '"'}


def demangle(name):
    """Rust's legacy mangling (`_ZN...E`) to a readable path, hash dropped; v0 symbols (`_R...`)
    are reduced to their crate and item identifiers, which is all the grouping needs."""
    if name.startswith("_ZN"):
        at, parts = 3, []
        while at < len(name) and name[at].isdigit():
            digits = re.match(r"\d+", name[at:]).group(0)
            at += len(digits)
            parts.append(name[at:at + int(digits)])
            at += int(digits)
        if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
            parts.pop()
        text = "::".join(parts)
        for escape, char in ESCAPES.items():
            text = text.replace(escape, char)
        return text.replace("..", "::").replace("_<", "<")
    if name.startswith("_R"):
        # Drop disambiguators (`Cs<base62>_`, `Ms0_`), which hold digits that would read as lengths.
        name = re.sub(r"([CM])s[0-9a-zA-Z]*_", r"\1", name)
        idents = []
        at = 2
        while at < len(name):
            match = re.match(r"(\d+)_?", name[at:])
            if match and int(match.group(1)) > 0:
                length = int(match.group(1))
                start = at + match.end()
                idents.append(name[start:start + length])
                at = start + length
            else:
                at += 1
        return "::".join(i for i in idents if i and not re.fullmatch(r"[0-9a-zA-Z]{1,2}", i))
    return name


def crate_of(name):
    # `<serde_json::de::Deserializer<R> as serde::...>::f` belongs to serde_json; plain paths to
    # their first segment; anything else (wasm-bindgen shims, libc) to its own bucket.
    name = name.lstrip("<&*").removeprefix("mut ").removeprefix("dyn ")
    match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", name)
    return match.group(1) if match else "(other: " + name.split("(")[0][:30] + ")"


def analyse(path):
    data = open(path, "rb").read()
    imports = 0
    bodies = []
    names = {}
    totals = defaultdict(int)
    custom = {}
    for kind, body in sections(data):
        totals[kind] += len(body)
        if kind == 0:
            length, at = leb(body, 0)
            custom[body[at:at + length].decode("utf-8", "replace")] = len(body)
        if kind == 2:
            imports = imported_functions(body)
        elif kind == 10:
            count, at = leb(body, 0)
            for _ in range(count):
                size, start = leb(body, at)
                bodies.append(size)
                at = start + size
        elif kind == 0:
            names.update(function_names(body))
    by_crate = defaultdict(int)
    by_function = []
    for offset, size in enumerate(bodies):
        name = demangle(names.get(imports + offset, f"func{imports + offset}"))
        by_crate[crate_of(name)] += size
        by_function.append((size, name))
    return {
        "size": len(data),
        "code": sum(bodies),
        "functions": len(bodies),
        "data": totals[11],
        "named": bool(names),
        "custom": custom,
        "by_crate": by_crate,
        "by_function": by_function,
    }


def summary(path, report):
    print(f"{path}: {report['size']} bytes raw; code {report['code']} in "
          f"{report['functions']} functions; data segments {report['data']}")
    if report["custom"]:
        listed = ", ".join(f"{name} {size}" for name, size in report["custom"].items())
        print(f"  custom sections (bytes): {listed}")
    if not report["named"]:
        print("  (no name section: a stripped build; group by crate needs an unstripped one)")


def main():
    args = sys.argv[1:]
    if args and args[0] == "--sections":
        # Only the section sizes: e.g. to see whether a shipped build still carries its names.
        for path in args[1:]:
            summary(path, analyse(path))
        return
    top = int(args.pop()) if args and args[-1].isdigit() else 25
    report = analyse(args[0])
    summary(args[0], report)
    if len(args) == 1:
        code = report["code"]
        print(f"\ncode by crate (top {top}):")
        for crate, size in sorted(report["by_crate"].items(), key=lambda kv: -kv[1])[:top]:
            print(f"  {size:>8} {100 * size / code:5.1f}%  {crate}")
        print(f"\nlargest functions (top {top}):")
        for size, name in sorted(report["by_function"], reverse=True)[:top]:
            print(f"  {size:>8}  {name[:140]}")
        return
    base = analyse(args[1])
    summary(args[1], base)
    print(f"  difference: code {report['code'] - base['code']:+}, data {report['data'] - base['data']:+}")
    crates = set(report["by_crate"]) | set(base["by_crate"])
    rows = sorted(((report["by_crate"].get(c, 0) - base["by_crate"].get(c, 0), c) for c in crates),
                  reverse=True)
    print(f"\ncode by crate, largest additions first (top {top}; raw bytes before wasm-opt):")
    print(f"  {'this':>8} {'base':>8} {'added':>8}  crate")
    for delta, crate in rows[:top]:
        print(f"  {report['by_crate'].get(crate, 0):>8} {base['by_crate'].get(crate, 0):>8} "
              f"{delta:>+8}  {crate}")
    print(f"\nlargest functions (top {top}):")
    for size, name in sorted(report["by_function"], reverse=True)[:top]:
        print(f"  {size:>8}  {name[:140]}")


try:
    main()
except BrokenPipeError:
    pass
