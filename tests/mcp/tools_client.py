"""The official `mcp` SDK calling a user's script tools through roost's
/mcp: backend/tests/mcp_script_tools.rs runs it and asserts on the JSON it
prints.

usage: tools_client.py BASE_URL TOKEN COMPONENT_B64_FILE

The component is the `agent-tools` example: `sum`, `greet` and `now` are
tools, `status` is not.
"""

import json
import sys

import anyio
import httpx2
import mcp_types as types
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def dump(result):
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


class ListChanges:
    """Counts `notifications/tools/list_changed` as the session gets them."""

    def __init__(self):
        self.count = 0
        self.arrived = anyio.Event()

    async def handle(self, message):
        if isinstance(message, types.ToolListChangedNotification):
            self.count += 1
            self.arrived.set()

    async def next(self, action):
        """Runs `action`, then waits (at most 20 s) for a notice."""
        self.arrived = anyio.Event()
        result = await action()
        with anyio.fail_after(20):
            await self.arrived.wait()
        return result


async def tool_names(session):
    return sorted(t.name for t in (await session.list_tools()).tools)


async def call(session, name, arguments):
    try:
        return dump(await session.call_tool(name, arguments))
    except MCPError as err:
        return {"protocol_error": {"code": err.error.code, "message": err.error.message}}


async def main():
    base, token, component_file = sys.argv[1:4]
    with open(component_file) as f:
        component = f.read()
    out = {}
    headers = {"Authorization": f"Bearer {token}"}
    changes = ListChanges()
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(f"{base}/mcp", http_client=http) as streams:
            async with ClientSession(
                streams[0], streams[1], message_handler=changes.handle
            ) as session:
                init = await session.initialize()
                out["capabilities"] = dump(init.capabilities)
                out["tools_before"] = await tool_names(session)

                deploy = lambda name: session.call_tool(  # noqa: E731
                    "deploy_script", {"name": name, "component_base64": component}
                )
                deployed = await changes.next(lambda: deploy("tools"))
                out["deploy"] = dump(deployed)
                listed = (await session.list_tools()).tools
                out["tools"] = {
                    t.name: {"description": t.description, "input_schema": t.input_schema}
                    for t in listed
                }

                out["sum"] = await call(session, "tools__sum", {"numbers": [1, 2, 3.5]})
                out["greet"] = await call(
                    session, "tools__greet", {"name": "Ada", "excitement": 2}
                )
                out["now"] = await call(session, "tools__now", {})
                out["nobody"] = await call(session, "tools__greet", {"name": "nobody"})
                out["invalid"] = {
                    "empty_name": await call(session, "tools__greet", {"name": ""}),
                    "too_excited": await call(
                        session, "tools__greet", {"name": "Ada", "excitement": 9}
                    ),
                    "unknown_field": await call(session, "tools__greet", {"nome": "Ada"}),
                    "wrong_type": await call(session, "tools__sum", {"numbers": "1, 2"}),
                    "no_arguments": await call(session, "tools__sum", {}),
                }
                out["not_a_tool"] = await call(session, "tools__status", {})
                out["others_tool"] = await call(session, "bobs__sum", {"numbers": [1]})

                # A second script's tools appear, and go when it is deleted
                # (through the REST API: any change reaches the session).
                second = await changes.next(lambda: deploy("tools2"))
                out["after_second_deploy"] = await tool_names(session)
                script_id = second.structured_content["script_id"]

                async def delete():
                    async with httpx2.AsyncClient(headers=headers) as rest:
                        answer = await rest.delete(f"{base}/v1/scripts/{script_id}")
                        return answer.status_code

                out["delete_status"] = await changes.next(delete)
                out["after_delete"] = await tool_names(session)
                out["notices"] = changes.count

                resources = await session.list_resources()
                out["resources"] = [str(r.uri) for r in resources.resources]
                templates = await session.list_resource_templates()
                out["templates"] = [t.uri_template for t in templates.resource_templates]
                index = await session.read_resource("roost://integrations")
                out["index"] = index.contents[0].text
                pair = await session.read_resource("roost://integrations/gmail,slack")
                out["pair"] = {"text": pair.contents[0].text, "mime": pair.contents[0].mime_type}
                try:
                    await session.read_resource("roost://integrations/no-such-thing")
                    out["unknown_resource"] = None
                except MCPError as err:
                    out["unknown_resource"] = {
                        "code": err.error.code,
                        "message": err.error.message,
                    }
    print(json.dumps(out))


anyio.run(main)
