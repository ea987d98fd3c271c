"""What the SDK test scripts share: clients for a node, and a list of failed checks."""

from urllib.parse import unquote, urlsplit, urlunsplit

from conductor.client.configuration.configuration import Configuration
from conductor.client.configuration.settings.authentication_settings import AuthenticationSettings
from conductor.client.orkes_clients import OrkesClients


def connect(base_url: str):
    """The SDK's configuration and its metadata, workflow and executor clients for a node.

    An API key in the URL (`http://keyId:secret@host:port`) is given to the SDK as its
    authentication settings, so it fetches a token and sends it as `X-Authorization`."""
    parts = urlsplit(base_url)
    auth = None
    if parts.username:
        auth = AuthenticationSettings(key_id=unquote(parts.username), key_secret=unquote(parts.password or ""))
        base_url = urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))
    config = Configuration(server_api_url=f"{base_url}/api", debug=False, authentication_settings=auth)
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
