"""The official `mcp` SDK's stdio client driving `roost mcp`, which proxies to
a roost server's /mcp: backend/tests/mcp_stdio.rs runs it and asserts on the
JSON it prints.

usage: stdio_client.py ROOST_BINARY SERVER_URL TOKEN COMPONENT

COMPONENT is a guest that `roost deploy` deploys while the session is open,
when the server says its tool list can change: the server's
notifications/tools/list_changed must come through `roost mcp`.
"""

import json
import os
import sys
import time

import anyio

from mcp import ClientSession, MCPError
from mcp.client.stdio import StdioServerParameters, stdio_client


def dump(result):
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


async def main():
    binary, server, token, component = sys.argv[1:5]
    env = {"ROOST_SERVER": server, "ROOST_TOKEN": token}
    changed = anyio.Event()

    async def on_message(message):
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            changed.set()

    params = StdioServerParameters(
        command=binary,
        args=["mcp"],
        env=env,
    )
    out = {}
    async with stdio_client(params) as streams:
        async with ClientSession(streams[0], streams[1], message_handler=on_message) as session:
            init = await session.initialize()
            out["init"] = dump(init)
            tools = await session.list_tools()
            out["tools"] = {t.name: t.input_schema for t in tools.tools}
            out["tools_next_cursor"] = tools.next_cursor
            out["docs"] = dump(await session.call_tool("get_integration_docs", {"ids": ["gmail"]}))
            out["unknown_docs"] = dump(
                await session.call_tool("get_integration_docs", {"ids": ["no-such-thing"]})
            )
            out["scripts"] = dump(await session.call_tool("list_scripts", {}))
            # Without resources, the server's JSON-RPC error, passed on.
            try:
                resources = await session.list_resources()
                out["resources"] = dump(resources)
                out["templates"] = dump(await session.list_resource_templates())
                if resources.resources:
                    first = resources.resources[0].uri
                    out["resource_read"] = dump(await session.read_resource(first))
            except MCPError as err:
                out["resources_error"] = {"code": err.error.code, "message": err.error.message}
            tools_caps = init.capabilities.tools
            if tools_caps is not None and tools_caps.list_changed:
                deploy = await anyio.run_process(
                    [binary, "deploy", "--name", "while-connected", component],
                    env=os.environ | env,
                    check=False,
                )
                out["deploy_status"] = deploy.returncode
                with anyio.move_on_after(20):
                    await changed.wait()
                out["list_changed"] = changed.is_set()
        # Leaving stdio_client closes `roost mcp`'s stdin and waits for it to
        # end (terminating it after a grace period): it must end by itself.
        closing = time.monotonic()
    out["exit_secs"] = time.monotonic() - closing
    print(json.dumps(out))


if __name__ == "__main__":
    anyio.run(main)
