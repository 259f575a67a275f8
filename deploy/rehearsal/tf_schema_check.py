#!/usr/bin/env python3
"""Checks every .tf file of the Terraform stacks against the google provider's
real schema, offline.

The schema comes from a prebuilt provider bindings package (a jsii assembly
that lists, for every resource and data source of one provider version, each
argument and nested block, whether it is required, and every attribute that
can be read). It is reduced once to a small JSON file and cached.

Fails on:
  * a resource or data source type the provider does not have;
  * an argument or block the type (or the enclosing block) does not have, an
    argument written as a block or a block written as an argument;
  * a required argument or block that is missing;
  * lifecycle.ignore_changes naming something the type does not have;
  * a reference TYPE.NAME.ATTR (or data.TYPE.NAME.ATTR) to a resource the stack
    does not declare, or to an attribute the type does not have;
  * var.X / local.X that are not declared;
  * a value the provider does not accept for an argument whose documentation
    lists its possible values (node types, modes, enums): a literal, a local
    holding a literal, each branch of a `cond ? "A" : "B"`, or a variable whose
    default and `contains([...], var.X)` validation stay within those values
    (a variable without such a validation is an error);
  * a provider version constraint in versions.tf that the schema's version
    does not satisfy.

usage: tf_schema_check.py --schema SCHEMA.json [--assembly ASSEMBLY.jsii] STACK_DIR...
  With --assembly, (re)builds SCHEMA.json from the assembly first.
"""
import argparse
import json
import os
import re
import sys

import hcl2

META_ARGS = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
LIFECYCLE = {"create_before_destroy", "prevent_destroy", "ignore_changes", "replace_triggered_by",
             "precondition", "postcondition"}
INTERNAL = {"__is_block__", "__comments__", "__inline_comments__", "__start_line__", "__end_line__"}

LINK = re.compile(r"#([a-z0-9_]+) [A-Za-z0-9]+#[a-z0-9_]+\}")
POSSIBLE = re.compile(r"Possible values: \[([^\]]*)\]")
TYPE_LINK = re.compile(r"/docs(?:/(resources|data-sources)/[a-z0-9_]+)? ([a-z0-9_]+)\}")
VERSION = re.compile(r"hashicorp/google/([0-9.]+)/docs")


# ---------------------------------------------------------------- schema from the assembly

def camel_to_snake(name):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def build_schema(assembly_path):
    asm = json.load(open(assembly_path))
    types = asm["types"]

    def unwrap(t):
        """(struct fqn or None) of a property type, through unions and lists."""
        if "union" in t:
            for u in t["union"]["types"]:
                f = unwrap(u)
                if f:
                    return f
            return None
        if "collection" in t:
            return unwrap(t["collection"]["elementtype"])
        fqn = t.get("fqn")
        if fqn and types.get(fqn, {}).get("datatype"):
            return fqn
        return None

    memo = {}

    def struct(fqn):
        if fqn in memo:
            return memo[fqn]
        node = {"a": {}, "b": {}, "e": {}}
        memo[fqn] = node
        for p in types[fqn].get("properties", []):
            docs = p.get("docs", {})
            text = docs.get("summary", "") + " " + docs.get("remarks", "")
            m = LINK.search(text)
            name = m.group(1) if m else camel_to_snake(p["name"])
            required = not p.get("optional", False)
            sub = unwrap(p["type"])
            if sub:
                node["b"][name] = {"r": required, "n": struct(sub)}
            else:
                node["a"][name] = required
                values = POSSIBLE.search(text)
                if values:
                    node["e"][name] = re.findall(r'"([^"]*)"', values.group(1))
        return node

    def readable(cls):
        names = set()
        for p in cls.get("properties", []):
            if p.get("static"):
                continue
            n = p["name"]
            if n.endswith("Input"):
                continue
            names.add(camel_to_snake(n))
        return sorted(names)

    out = {"version": None, "provider": None, "resource": {}, "data": {}}
    for fqn, t in types.items():
        base = t.get("base")
        if base not in ("cdktn.TerraformResource", "cdktn.TerraformDataSource", "cdktn.TerraformProvider"):
            continue
        summary = t.get("docs", {}).get("summary", "")
        v = VERSION.search(summary)
        if v:
            out["version"] = v.group(1)
        cfg = next((p["type"].get("fqn") for p in t["initializer"]["parameters"] if p["name"] == "config"), None)
        node = struct(cfg) if cfg else {"a": {}, "b": {}}
        if base == "cdktn.TerraformProvider":
            out["provider"] = node
            continue
        m = TYPE_LINK.search(summary)
        if not m:
            continue
        kind = "data" if m.group(1) == "data-sources" else "resource"
        node = dict(node)
        node["c"] = readable(t)
        out[kind][m.group(2)] = node

    # Interning: nested nodes are shared; serialise as a table of nodes.
    table, ids = [], {}

    def intern(node):
        key = id(node)
        if key in ids:
            return ids[key]
        ids[key] = len(table)
        table.append(None)
        entry = {"a": node["a"], "b": {k: [v["r"], None] for k, v in node["b"].items()}}
        if node.get("e"):
            entry["e"] = node["e"]
        if "c" in node:
            entry["c"] = node["c"]
        table[ids[key]] = entry
        for k, v in node["b"].items():
            entry["b"][k][1] = intern(v["n"])
        return ids[key]

    return {
        "format": 2,
        "version": out["version"],
        "nodes": table,
        "provider": intern(out["provider"]),
        "resource": {k: intern(v) for k, v in sorted(out["resource"].items())},
        "data": {k: intern(v) for k, v in sorted(out["data"].items())},
    }


# ---------------------------------------------------------------- checks

def unquote(s):
    return s[1:-1] if isinstance(s, str) and len(s) >= 2 and s[0] == s[-1] == '"' else s


def is_block(v):
    return isinstance(v, list) and v and all(isinstance(x, dict) and x.get("__is_block__") for x in v)


def version_ok(constraint, version):
    """Terraform version constraint (=, !=, >, >=, <, <=, ~>) against X.Y.Z."""
    v = tuple(int(x) for x in version.split("."))
    for part in constraint.split(","):
        m = re.fullmatch(r"\s*(~>|>=|<=|!=|=|>|<)?\s*([0-9.]+)\s*", part)
        if not m:
            return False
        op, want = m.group(1) or "=", m.group(2)
        w = tuple(int(x) for x in want.split("."))
        wp = w + (0,) * (3 - len(w))
        if op == "~>":
            upper = list(w[:-1]) if len(w) > 1 else [w[0]]
            upper[-1] += 1
            if not (v >= wp and v < tuple(upper) + (0,) * (3 - len(upper))):
                return False
        elif not {"=": v == wp, "!=": v != wp, ">": v > wp, ">=": v >= wp, "<": v < wp, "<=": v <= wp}[op]:
            return False
    return True


class Checker:
    def __init__(self, schema):
        self.s = schema
        self.errors = []
        self.variables = {}
        self.locals = {}
        self.enum_checks = 0

    def node(self, i):
        return self.s["nodes"][i]

    def err(self, where, msg):
        self.errors.append(f"{where}: {msg}")

    def body(self, where, body, node, top=False):
        attrs, blocks = node["a"], node["b"]
        present = set()
        for key, val in body.items():
            if key in INTERNAL:
                continue
            if top and key in META_ARGS:
                if key == "lifecycle":
                    self.lifecycle(where, val, node)
                continue
            if key == "dynamic":
                for dyn in val:
                    for name, spec in dyn.items():
                        if name in INTERNAL:
                            continue
                        name = unquote(name)
                        present.add(name)
                        if name not in blocks:
                            self.err(where, f"dynamic block {name!r}: no such block")
                            continue
                        for content in spec.get("content", []):
                            self.body(f"{where}.{name}", content, self.node(blocks[name][1]))
                continue
            present.add(key)
            if key in blocks:
                if not is_block(val):
                    self.err(where, f"{key!r} is a block, written as an argument")
                    continue
                for item in val:
                    self.body(f"{where}.{key}", item, self.node(blocks[key][1]))
            elif key in attrs:
                if is_block(val):
                    self.err(where, f"{key!r} is an argument, written as a block")
                elif key in node.get("e", {}):
                    self.enum(where, key, val, node["e"][key])
            else:
                self.err(where, f"unknown argument or block {key!r}")
        for name, req in attrs.items():
            if req and name not in present:
                self.err(where, f"required argument {name!r} missing")
        for name, (req, _) in blocks.items():
            if req and name not in present:
                self.err(where, f"required block {name!r} missing")

    def enum(self, where, key, val, allowed):
        """A value of an argument with documented possible values stays within them."""
        if not isinstance(val, str):
            return
        literal = re.fullmatch(r'"([^"$]*)"', val)
        inner = val[2:-1] if val.startswith("${") and val.endswith("}") else None
        if literal:
            found = [literal.group(1)]
        elif inner and re.fullmatch(r"var\.([a-z0-9_]+)", inner):
            name = inner[4:]
            var = self.variables.get(name)
            if var is None:
                return  # reported as undeclared elsewhere
            lists = re.findall(r"contains\(\[([^\]]*)\],\s*var\.%s\)" % name, json.dumps(var.get("validation", [])).replace('\\"', '"'))
            if not lists:
                self.err(where, f"{key} = var.{name}: the variable has no contains([...], var.{name}) validation "
                         f"keeping it to the provider's values {allowed}")
                return
            found = [unquote(x.strip()) for x in lists[0].split(",") if x.strip()]
            if isinstance(var.get("default"), str):
                found.append(unquote(var["default"]))
        elif inner and re.fullmatch(r"local\.[a-z0-9_.]+", inner):
            value = self.locals
            for part in inner.split(".")[1:]:
                value = value.get(part) if isinstance(value, dict) else None
            if not isinstance(value, str) or not re.fullmatch(r'"[^"$]*"', value):
                return
            found = [unquote(value)]
        elif inner and re.fullmatch(r'[^?"]+\?\s*"[^"$]*"\s*:\s*"[^"$]*"', inner):
            found = re.findall(r'"([^"$]*)"', inner)
        else:
            return
        self.enum_checks += 1
        bad = [v for v in found if v not in allowed]
        if bad:
            self.err(where, f"{key}: {bad} not among the provider's values {allowed}")

    def lifecycle(self, where, val, node):
        for lc in val:
            for key, v in lc.items():
                if key in INTERNAL:
                    continue
                if key not in LIFECYCLE:
                    self.err(where, f"lifecycle: unknown {key!r}")
                if key == "ignore_changes" and isinstance(v, list):
                    for item in v:
                        name = re.sub(r"^\$\{|\}$", "", str(item)).split(".")[0].split("[")[0]
                        if name not in node["a"] and name not in node["b"] and name not in META_ARGS:
                            self.err(where, f"lifecycle.ignore_changes: no {name!r}")


REF = re.compile(r"(?<![\w.])(data\.)?(google_[a-z0-9_]+)\.([a-z0-9_]+)(?:\[[^\]]*\])?\.([a-z0-9_]+)")
VAR = re.compile(r"(?<![\w.])(var|local)\.([a-z0-9_]+)")


def check_stack(checker, stack):
    files = sorted(f for f in os.listdir(stack) if f.endswith(".tf"))
    declared = {"resource": set(), "data": set(), "var": set(), "local": set()}
    docs = {}
    for f in files:
        path = os.path.join(stack, f)
        try:
            docs[f] = hcl2.load(open(path))
        except Exception as e:  # a parse error is a finding too
            checker.err(path, f"does not parse: {e}")
    checker.variables, checker.locals = {}, {}
    for f, d in docs.items():
        for blk in d.get("variable", []):
            declared["var"].update(unquote(k) for k in blk if k not in INTERNAL)
            checker.variables.update({unquote(k): v for k, v in blk.items() if k not in INTERNAL})
        for blk in d.get("locals", []):
            declared["local"].update(k for k in blk if k not in INTERNAL)
            checker.locals.update({k: v for k, v in blk.items() if k not in INTERNAL})
        for kind in ("resource", "data"):
            for blk in d.get(kind, []):
                for typ, inst in blk.items():
                    for name in inst:
                        if name not in INTERNAL:
                            declared[kind].add((unquote(typ), unquote(name)))

    n = 0
    for f, d in docs.items():
        where0 = os.path.join(stack, f)
        for kind in ("resource", "data"):
            for blk in d.get(kind, []):
                for typ, inst in blk.items():
                    typ = unquote(typ)
                    for name, body in inst.items():
                        if name in INTERNAL:
                            continue
                        where = f"{where0}: {'data.' if kind == 'data' else ''}{typ}.{unquote(name)}"
                        idx = checker.s[kind].get(typ)
                        if idx is None:
                            checker.err(where, f"the google provider {checker.s['version']} has no {kind} type {typ}")
                            continue
                        n += 1
                        checker.body(where, body, checker.node(idx), top=True)
        for blk in d.get("provider", []):
            for pname, body in blk.items():
                if unquote(pname) == "google":
                    checker.body(f"{where0}: provider google", body, checker.node(checker.s["provider"]))
        for blk in d.get("terraform", []):
            for rp in blk.get("required_providers", []):
                g = rp.get("google")
                if isinstance(g, dict):
                    constraint = unquote(g.get("version", ""))
                    if not version_ok(constraint, checker.s["version"]):
                        checker.err(where0, f"google provider constraint {constraint!r} excludes the checked schema {checker.s['version']}")

        # references, on the raw text (comments stripped)
        text = re.sub(r"(?m)^\s*(#|//).*$", "", open(os.path.join(stack, f)).read())
        for m in REF.finditer(text):
            is_data, typ, name, attr = bool(m.group(1)), m.group(2), m.group(3), m.group(4)
            kind = "data" if is_data else "resource"
            if (typ, name) not in declared[kind]:
                if typ in checker.s[kind]:
                    checker.err(where0, f"reference {m.group(0)}: {kind} {typ}.{name} is not declared in this stack")
                continue
            node = checker.node(checker.s[kind][typ])
            if attr not in node.get("c", []) and attr not in node["a"] and attr not in node["b"]:
                checker.err(where0, f"reference {m.group(0)}: {typ} has no attribute {attr!r}")
        for m in VAR.finditer(text):
            if m.group(2) not in declared[m.group(1)]:
                checker.err(where0, f"{m.group(0)} is not declared")
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--schema", required=True)
    ap.add_argument("--assembly")
    ap.add_argument("stacks", nargs="+")
    a = ap.parse_args()
    if a.assembly:
        schema = build_schema(a.assembly)
        tmp = a.schema + ".tmp"
        with open(tmp, "w") as f:
            json.dump(schema, f, separators=(",", ":"))
        os.replace(tmp, a.schema)
    schema = json.load(open(a.schema))
    if schema.get("format") != 2:
        sys.exit(f"{a.schema}: a schema of an older format (no argument values); rebuild it with --assembly")
    c = Checker(schema)
    total = 0
    for stack in a.stacks:
        before = c.enum_checks
        k = check_stack(c, stack)
        total += k
        print(f"{stack}: {k} resources and data sources checked against google provider {schema['version']} "
              f"({len(schema['resource'])} resource types, {len(schema['data'])} data sources known), "
              f"{c.enum_checks - before} values against the provider's documented possible values")
    if c.errors:
        print("\n".join(c.errors), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
