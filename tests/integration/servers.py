from testkit.servers import *  # moved to testkit/servers.py (shared with bench/); import it from there
