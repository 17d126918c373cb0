from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("version", "mode", "pid", "started_at", "vips", "nexthops", "pinned", "repairs", "config_file", "healthy", "problems")
    class NexthopsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    VIPS_FIELD_NUMBER: _ClassVar[int]
    NEXTHOPS_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    REPAIRS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FILE_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    version: str
    mode: str
    pid: int
    started_at: float
    vips: _containers.RepeatedScalarFieldContainer[str]
    nexthops: _containers.ScalarMap[str, int]
    pinned: int
    repairs: int
    config_file: str
    healthy: bool
    problems: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[str] = ..., mode: _Optional[str] = ..., pid: _Optional[int] = ..., started_at: _Optional[float] = ..., vips: _Optional[_Iterable[str]] = ..., nexthops: _Optional[_Mapping[str, int]] = ..., pinned: _Optional[int] = ..., repairs: _Optional[int] = ..., config_file: _Optional[str] = ..., healthy: _Optional[bool] = ..., problems: _Optional[_Iterable[str]] = ...) -> None: ...

class ListNexthopsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Nexthop(_message.Message):
    __slots__ = ("name", "address", "ifname", "family", "state", "pinned", "mark", "table")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IFNAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    MARK_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    ifname: str
    family: int
    state: str
    pinned: int
    mark: int
    table: int
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., ifname: _Optional[str] = ..., family: _Optional[int] = ..., state: _Optional[str] = ..., pinned: _Optional[int] = ..., mark: _Optional[int] = ..., table: _Optional[int] = ...) -> None: ...

class ListNexthopsReply(_message.Message):
    __slots__ = ("nexthops",)
    NEXTHOPS_FIELD_NUMBER: _ClassVar[int]
    nexthops: _containers.RepeatedCompositeFieldContainer[Nexthop]
    def __init__(self, nexthops: _Optional[_Iterable[_Union[Nexthop, _Mapping]]] = ...) -> None: ...

class FlowFilter(_message.Message):
    __slots__ = ("nexthop", "vip", "src", "dst", "sport", "dport")
    NEXTHOP_FIELD_NUMBER: _ClassVar[int]
    VIP_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    SPORT_FIELD_NUMBER: _ClassVar[int]
    DPORT_FIELD_NUMBER: _ClassVar[int]
    nexthop: str
    vip: str
    src: str
    dst: str
    sport: int
    dport: int
    def __init__(self, nexthop: _Optional[str] = ..., vip: _Optional[str] = ..., src: _Optional[str] = ..., dst: _Optional[str] = ..., sport: _Optional[int] = ..., dport: _Optional[int] = ...) -> None: ...

class ListFlowsRequest(_message.Message):
    __slots__ = ("filter", "limit", "page_token")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filter: FlowFilter
    limit: int
    page_token: str
    def __init__(self, filter: _Optional[_Union[FlowFilter, _Mapping]] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Flow(_message.Message):
    __slots__ = ("src", "dst", "sport", "dport", "proto", "nexthop", "state", "age_s")
    SRC_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    SPORT_FIELD_NUMBER: _ClassVar[int]
    DPORT_FIELD_NUMBER: _ClassVar[int]
    PROTO_FIELD_NUMBER: _ClassVar[int]
    NEXTHOP_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AGE_S_FIELD_NUMBER: _ClassVar[int]
    src: str
    dst: str
    sport: int
    dport: int
    proto: str
    nexthop: str
    state: str
    age_s: float
    def __init__(self, src: _Optional[str] = ..., dst: _Optional[str] = ..., sport: _Optional[int] = ..., dport: _Optional[int] = ..., proto: _Optional[str] = ..., nexthop: _Optional[str] = ..., state: _Optional[str] = ..., age_s: _Optional[float] = ...) -> None: ...

class ListFlowsReply(_message.Message):
    __slots__ = ("flows", "next_page_token")
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    flows: _containers.RepeatedCompositeFieldContainer[Flow]
    next_page_token: str
    def __init__(self, flows: _Optional[_Iterable[_Union[Flow, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PurgeFlowsRequest(_message.Message):
    __slots__ = ("filter",)
    FILTER_FIELD_NUMBER: _ClassVar[int]
    filter: FlowFilter
    def __init__(self, filter: _Optional[_Union[FlowFilter, _Mapping]] = ...) -> None: ...

class PurgeFlowsReply(_message.Message):
    __slots__ = ("purged",)
    PURGED_FIELD_NUMBER: _ClassVar[int]
    purged: int
    def __init__(self, purged: _Optional[int] = ...) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ("nexthop", "deadline_s")
    NEXTHOP_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_S_FIELD_NUMBER: _ClassVar[int]
    nexthop: str
    deadline_s: float
    def __init__(self, nexthop: _Optional[str] = ..., deadline_s: _Optional[float] = ...) -> None: ...

class NexthopRequest(_message.Message):
    __slots__ = ("nexthop",)
    NEXTHOP_FIELD_NUMBER: _ClassVar[int]
    nexthop: str
    def __init__(self, nexthop: _Optional[str] = ...) -> None: ...

class DrainReply(_message.Message):
    __slots__ = ("nexthop", "state", "pinned", "deadline_at")
    NEXTHOP_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_AT_FIELD_NUMBER: _ClassVar[int]
    nexthop: str
    state: str
    pinned: int
    deadline_at: float
    def __init__(self, nexthop: _Optional[str] = ..., state: _Optional[str] = ..., pinned: _Optional[int] = ..., deadline_at: _Optional[float] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Event(_message.Message):
    __slots__ = ("time", "kind", "nexthop", "detail")
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NEXTHOP_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    time: float
    kind: str
    nexthop: str
    detail: str
    def __init__(self, time: _Optional[float] = ..., kind: _Optional[str] = ..., nexthop: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ResyncRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResyncReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
