from testkit.manifests import *  # moved to testkit/manifests.py (shared with scripts/); import it from there
