"""asyncio pipelines that run transfer plans against a Store: push (pack + upload) and fetch
(ranged download + verify + place). Entered through transfer/session.RemoteSession, which runs
each command's steps on one event loop; nothing above this layer is async."""
