"""Checks the server's OpenAPI documents with real tools from PyPI.

Usage: openapi_check.py BASE_URL MODEL [MODEL ...]

openapi-spec-validator validates the server's document and each model's;
the docs pages are Swagger UI pointing at them; then a bounded schemathesis
run (coverage and fuzzing phases) against the server's document and each
model's (repository load/unload left out, so the models stay loaded) must
find no server error (5xx). Prints "openapi checks passed" at the end.
"""
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

from openapi_spec_validator import validate


def get(url):
    with urllib.request.urlopen(url) as r:
        return r.status, r.headers.get("content-type", ""), r.read()


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name} {detail}")
        sys.exit(1)
    print(f"ok   {name}")


def schemathesis(schema_url, examples):
    exe = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    run = subprocess.run(
        [exe, "run", schema_url, "--checks", "not_a_server_error",
         "--max-examples", str(examples), "--phases", "coverage,fuzzing",
         "--exclude-path-regex", "/v2/repository/models/", "--warnings", "off",
         # One worker: with two threads, hypothesis describes strategies'
         # lambdas through ast.parse in both at once, and CPython 3.11's AST
         # constructor tracks its recursion depth in state the threads share
         # and can get wrong (gh-106905): a run failed now and then with
         # "SystemError: AST constructor recursion depth mismatch", an error
         # of the tool, not a finding about the server.
         "--seed", "1", "-w", "1"],
        capture_output=True, text=True, timeout=600,
        # Its cache (.schemathesis/) goes in the working directory.
        cwd=tempfile.gettempdir(),
    )
    # Long enough to hold a failure's traceback above the summary.
    tail = "\n".join(run.stdout.splitlines()[-80:])
    check(f"schemathesis {schema_url}", run.returncode == 0, f"\n{tail}\n{run.stderr}")


def main(base, models):
    status, kind, body = get(f"{base}/v2/docs/dataplane.json")
    document = json.loads(body)
    validate(document)
    check("server document validates", status == 200 and kind.startswith("application/json"))
    status, kind, page = get(f"{base}/v2/docs")
    check("server docs page", status == 200 and kind.startswith("text/html")
          and b"/v2/docs/dataplane.json" in page and b"swagger-ui" in page, page[:200])
    for model in models:
        status, _, body = get(f"{base}/v2/models/{model}/docs/dataplane.json")
        doc = json.loads(body)
        validate(doc)
        check(f"{model} document validates", status == 200)
        status, _, page = get(f"{base}/v2/models/{model}/docs")
        check(f"{model} docs page", status == 200
              and f"/v2/models/{model}/docs/dataplane.json".encode() in page)
    try:
        get(f"{base}/v2/models/no-such-model/docs/dataplane.json")
        check("unknown model's document is 404", False)
    except urllib.error.HTTPError as e:
        check("unknown model's document is 404", e.code == 404, e.code)

    schemathesis(f"{base}/v2/docs/dataplane.json", 25)
    for model in models:
        schemathesis(f"{base}/v2/models/{model}/docs/dataplane.json", 40)
    print("openapi checks passed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
