"""Runs docs/integration.md's PyJWT snippet against a running Gatehouse.

Run by TestClientLibraries (internal/app/clientlibs_test.go):

    GATEHOUSE_ISSUER=… ACCESS_TOKENS='{"name": "eyJ…", …}' python3 doc_snippet.py SNIPPET.py

SNIPPET.py is the ```python block of docs/integration.md ("Python, with
PyJWT"), unchanged; it reads GATEHOUSE_ISSUER itself. For each token the
snippet's verify_access_token must accept it, and must refuse it when its
expected audience is another API's (the snippet with `audience=ISSUER`
replaced) or when the signature is altered.

Prints one JSON document, {"results": [{"name": …, "ok": …, …}]}, on
stdout and exits 1 if any check failed.
"""

import json
import os
import sys

OTHER_AUDIENCE = "https://other.example"


def load(source):
    """Executes the snippet as a module and returns its namespace."""
    namespace = {"__name__": "gatehouse_doc_snippet"}
    exec(compile(source, "docs/integration.md (PyJWT)", "exec"), namespace)
    return namespace


def describe(err):
    return {"type": type(err).__name__, "message": str(err)}


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        source = f.read()
    tokens = json.loads(os.environ["ACCESS_TOKENS"])
    results = []

    def check(name, fn):
        try:
            results.append({"name": name, "ok": True, **fn()})
        except Exception as err:  # report every failure, then go on
            results.append({"name": name, "ok": False, "error": describe(err)})

    doc = load(source)
    # The snippet fixes its audience to the issuer; the same code with
    # another API's audience must refuse Gatehouse's tokens. Exactly one
    # place to change, or the doc changed and this test must follow.
    marker = "audience=ISSUER,"
    if source.count(marker) != 1:
        print(f"the snippet has {source.count(marker)} occurrences of {marker!r}, want 1", file=sys.stderr)
        sys.exit(2)
    other = load(source.replace(marker, f"audience={OTHER_AUDIENCE!r},"))
    jwt = doc["jwt"]

    for name, token in sorted(tokens.items()):

        def valid():
            claims = doc["verify_access_token"]("Bearer " + token)
            return {"header": jwt.get_unverified_header(token), "claims": claims}

        def refused(verify, token, want):
            def run():
                try:
                    verify("Bearer " + token)
                except want as err:
                    return {"refused": describe(err)}
                raise AssertionError(f"accepted; want {want.__name__}")

            return run

        head, _, sig = token.rpartition(".")
        tampered = head + "." + ("A" if sig[0] != "A" else "B") + sig[1:]

        check(f"{name}: valid", valid)
        check(f"{name}: wrong audience", refused(other["verify_access_token"], token, jwt.InvalidAudienceError))
        check(f"{name}: altered signature", refused(doc["verify_access_token"], tampered, jwt.InvalidSignatureError))

    print(json.dumps({"pyjwt": jwt.__version__, "results": results}))
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
