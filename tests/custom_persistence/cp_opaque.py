"""A plain object neither JSON nor msgpack knows (importable through ``dependencies``, so
that pickle finds its class)."""


class Opaque:
    def __init__(self, value: int) -> None:
        self.value = value

    def __str__(self) -> str:
        return f"Opaque({self.value})"
