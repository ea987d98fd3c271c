"""What the SDK test scripts share: clients for a node, and a list of failed checks."""

from conductor.client.configuration.configuration import Configuration
from conductor.client.orkes_clients import OrkesClients


def connect(base_url: str):
    """The SDK's configuration and its metadata, workflow and executor clients for a node."""
    config = Configuration(server_api_url=f"{base_url}/api", debug=False)
    clients = OrkesClients(configuration=config)
    return config, clients.get_metadata_client(), clients.get_workflow_client(), clients.get_workflow_executor()


class Checks:
    """Records each check that fails, printing it at once."""

    def __init__(self):
        self.failures = []

    def __call__(self, cond, what):
        if not cond:
            self.failures.append(what)
            print(f"FAIL: {what}", flush=True)
