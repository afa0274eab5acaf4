"""Remote workers over SSH: `torc run` started on other machines with the system ssh/scp.

workers.py parses worker addresses and worker files; ssh.py runs ssh/scp and fans out over hosts;
operations.py is what `torc remote run/status/stop/collect-logs/delete-logs` do on each host.
"""

from torc.remote.ssh import SshError, SshSettings
from torc.remote.workers import Worker, parse_worker, parse_worker_file, parse_worker_lines

__all__ = ["SshError", "SshSettings", "Worker", "parse_worker", "parse_worker_file", "parse_worker_lines"]
