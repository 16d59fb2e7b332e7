"""`with_structured_output` for `ReliableChatModel`: function calling, JSON schema, JSON mode.

The schema travels inside the request (as a forced tool or as ``response_format``), so a
fallback model receives exactly the same structured-output instructions as the primary.
"""

from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import (
    JsonOutputKeyToolsParser,
    JsonOutputParser,
    PydanticOutputParser,
    PydanticToolsParser,
)
from langchain_core.runnables import Runnable, RunnableLambda, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass

if TYPE_CHECKING:
    from langchain_core.language_models import LanguageModelInput
    from langchain_core.messages import BaseMessage
    from langchain_core.output_parsers import BaseOutputParser

    from langchain_reliable_llm._chat_model import ReliableChatModel

__all__ = ["StructuredMethod", "structured_output"]

StructuredMethod = Literal["function_calling", "json_schema", "json_mode"]
_METHODS = ("function_calling", "json_schema", "json_mode")


def _is_pydantic(schema: Any) -> bool:
    return isinstance(schema, type) and is_basemodel_subclass(schema)


def _valid_call(name: str) -> Runnable[Any, Any]:
    """Pass the message on, or raise when its call of ``name`` could not be parsed.

    LangChain's tools parsers read ``tool_calls`` only, so a call whose arguments are not
    JSON (a truncated answer, say) would parse as None. ChatOpenAI raises there (its parser
    re-reads the raw call); so do we, with the same `OutputParserException`.
    """

    def check(message: Any) -> Any:
        if isinstance(message, AIMessage) and not message.tool_calls:
            for call in message.invalid_tool_calls:
                if call.get("name") == name:
                    raise OutputParserException(
                        f"the model called {name} with arguments that are not a JSON object "
                        f"({call.get('error')})",
                        llm_output=call.get("args") or "",
                    )
        return message

    return RunnableLambda(check, name="check_tool_call")


def structured_output(
    model: ReliableChatModel,
    schema: dict[str, Any] | type,
    *,
    method: StructuredMethod,
    include_raw: bool,
    strict: bool | None,
) -> Runnable[LanguageModelInput, Any]:
    """Build the runnable behind `ReliableChatModel.with_structured_output`.

    Raises:
        ValueError: ``method`` is unknown, or ``schema`` is missing for a method that needs it.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {list(_METHODS)}, got {method!r}")
    ls_format = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
    parser: Runnable[Any, Any]
    llm: Runnable[LanguageModelInput, BaseMessage]
    if method == "function_calling":
        tool = convert_to_openai_tool(schema, strict=strict)
        name = tool["function"]["name"]
        llm = model.bind_tools([tool], tool_choice=name, ls_structured_output_format=ls_format)
        if _is_pydantic(schema):
            tools_parser: BaseOutputParser[Any] = PydanticToolsParser(
                tools=[schema],  # type: ignore[list-item]
                first_tool_only=True,
            )
        else:
            tools_parser = JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
        parser = _valid_call(name) | tools_parser
    else:
        if method == "json_schema":
            json_schema = convert_to_json_schema(schema)
            spec: dict[str, Any] = {
                "name": json_schema.get("title", "output"),
                "schema": json_schema,
            }
            if strict is not None:
                spec["strict"] = strict
            response_format: dict[str, Any] = {"type": "json_schema", "json_schema": spec}
        else:
            response_format = {"type": "json_object"}
        llm = model.bind(response_format=response_format, ls_structured_output_format=ls_format)
        if _is_pydantic(schema):
            parser = PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
        else:
            parser = JsonOutputParser()
    if not include_raw:
        return llm | parser
    parsed = RunnablePassthrough.assign(
        parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
    )
    failed = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=llm) | parsed.with_fallbacks([failed], exception_key="parsing_error")
