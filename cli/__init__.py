"""The `kdcache` command line (installed as the package `kdcache.cli`).

One module per command or command group, each written the same way: the commands are module-level functions
named `<name>_command` that only parse options and call one library function (so everything the CLI does is also
available from Python), and `register(app)` at the end of the module adds them to the app, a group such as
`kdcache data` or `kdcache cache` as a `typer.Typer` of its own. `main.py` calls every module's `register`.
"""
