"""Print the service's OpenAPI document (the admin UI's client is generated from it).

Built from a default-configured app (dev auth, no test hooks), so the document does not depend
on the environment of whoever runs it.
"""

import json
import sys
from pathlib import Path

# This checkout's service, also when the virtualenv's editable install points at another one.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from countersign.app import create_app
from countersign.config import Settings

settings = Settings(test_hooks=False)
document = create_app(settings, in_process_worker=False).openapi()
json.dump(document, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
sys.stdout.write("\n")
