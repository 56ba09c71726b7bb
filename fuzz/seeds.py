#!/usr/bin/env python3
"""Writes the checked-in seed corpus under fuzz/seeds/<target>/seed-* from the repository's own
examples, fixtures and snapshots (run from anywhere; rewrites only seed-* files). The seeds give
each target a start inside its input's grammar; libFuzzer's own corpus grows beside them (in the
fuzz target directory, never checked in)."""
import gzip, hashlib, json, pathlib, shutil

FUZZ = pathlib.Path(__file__).resolve().parent
REPO = FUZZ.parent
SEEDS = FUZZ / "seeds"


def put(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data if isinstance(data, bytes) else data.encode())


for d in SEEDS.glob("*/seed-*"):
    d.unlink()

# manifest: every example file, and the fixtures of the cross-object stage (valid documents that
# compile to diagnostics), plus a few schema/CEL ones.
for f in sorted(REPO.glob("examples/*/*.yaml")):
    put("manifest", f"{f.parent.name}-{f.name}", f.read_bytes())
for f in sorted((REPO / "tests/fixtures/invalid").glob("*.yaml")):
    if f.name.startswith(("cross-egress", "cross-two", "cel-all-zero", "schema-", "cross-route")):
        put("manifest", f.name, f.read_bytes())

# gateway_config and packed: the compiled configs of the examples, as the snapshots hold them.
configs = []
for f in sorted((REPO / "tests/snapshots").glob("*.json")):
    for gw in json.loads(f.read_text())["gateways"]:
        text = json.dumps(gw["config"], indent=2)
        name = gw["config"]["gateway"]["name"]
        put("gateway_config", f"{f.stem}-{name}.json", text)
        configs.append((f"{f.stem}-{name}", text))


def manifest(encoding, text, packed, parts=1, size=None):
    return json.dumps({
        "format": 1,
        "configHash": hashlib.sha256(text.encode()).hexdigest(),
        "credentialsDigest": "0" * 64,
        "encoding": encoding,
        "parts": parts,
        "size": len(text.encode()) if size is None else size,
        "packedSize": len(packed),
    }, separators=(",", ":"))


name, text = configs[0]
put("packed", f"identity-{name}", manifest("identity", text, text.encode()) + "\n" + text)
gz = gzip.compress(text.encode(), mtime=0)
put("packed", f"gzip-{name}", manifest("gzip", text, gz).encode() + b"\n" + gz)
put("packed", f"gzip-3-parts-{name}", manifest("gzip", text, gz, parts=3).encode() + b"\n" + gz)
zeros = gzip.compress(b"\0" * (1 << 20), mtime=0)
put("packed", "gzip-bomb-claims-small", manifest("gzip", "x" * 100, zeros).encode() + b"\n" + zeros)

# egress: URL, CIDR, flags.
for i, line in enumerate([
    "http://169.254.169.254/latest/meta-data\n169.254.0.0/16\n",
    "http://2852039166/\n10.0.0.0/8\np",
    "http://0xa9.0xfe.0xa9.0xfe/\n\nl",
    "http://0251.0376.0251.0376:80/x\n127.0.0.1\npl",
    "http://[::ffff:169.254.169.254]/\n::ffff:0:0/96\n",
    "http://[64:ff9b::a9fe:a9fe]/\nfe80::/10\n",
    "http://[fd00:ec2::254]/\nfd00::/8\np",
    "http://localhost:8080/\n::1\nl",
    "http://metadata.google.internal/\n169.254.169.254/32\n",
    "https://api.openai.com/v1\n0.0.0.0/0\np",
]):
    put("egress", f"{i:02}", line)
print("seeds written under", SEEDS)
