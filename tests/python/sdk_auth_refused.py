"""The official SDK with a wrong API key against a node with authentication on: every call is
refused with 401, and nothing is written."""

import json
import sys

from sdk_common import Checks, connect


def main(base_url: str) -> int:
    check = Checks()
    _, metadata, workflows, _ = connect(base_url)
    try:
        defs = metadata.get_all_task_defs()
        check(False, f"listing task definitions with a wrong key succeeded: {defs}")
    except Exception as e:  # noqa: BLE001 (the SDK raises its own ApiException/AuthorizationException)
        status = getattr(e, "status", None) or getattr(e, "_status", None)
        check(status == 401 or "401" in str(e), f"refused with 401, not {type(e).__name__}: {e}")
    try:
        workflows.start_workflow_by_name("anything", {})
        check(False, "a start with a wrong key succeeded")
    except Exception as e:  # noqa: BLE001
        check("401" in str(e) or getattr(e, "status", None) == 401, f"start refused with 401: {e}")
    print(json.dumps({"failures": check.failures}), flush=True)
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
