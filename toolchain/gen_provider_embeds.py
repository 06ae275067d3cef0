"""Generate the pulumi-kubernetes provider's embedded files.

Equivalent of upstream's provider/cmd/pulumi-resource-kubernetes/generate.go
(`go generate`): schema.json with "version" set -> schema-embed.json, and
terraform-mapping.json re-serialized compactly -> terraform-mapping-embed.json.
The published module zip has the inputs but not these outputs.

Usage: python3 gen_provider_embeds.py <module cmd dir> <out dir> <version>
"""

import json
import os
import sys


def main(src: str, out: str, version: str) -> None:
    with open(os.path.join(src, "schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    schema["version"] = version
    with open(os.path.join(out, "schema-embed.json"), "w", encoding="utf-8") as f:
        json.dump(schema, f, separators=(",", ":"), ensure_ascii=False)
    with open(os.path.join(src, "terraform-mapping.json"), encoding="utf-8") as f:
        mapping = json.load(f)
    with open(os.path.join(out, "terraform-mapping-embed.json"), "w", encoding="utf-8") as f:
        json.dump(mapping, f, separators=(",", ":"), ensure_ascii=False)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
