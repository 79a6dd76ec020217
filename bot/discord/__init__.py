"""Everything that speaks Discord, and nothing else does.

- `app`: `SoraBot`, which carries the services to every cog, and the extensions list.
- `command_tree`: the one error surface, and the defer/reply helpers.
- `interactions`: which server, which bot, and what member and bot may do, read off an
  interaction (the rules that use them live in the service).
- `submission`: the one flow from a request to the "on its way" announcement.
- `components`: the Again, Remix and Delete buttons and the Remix form.
- `rendering`: every embed and message text a task produces.
- `notifier`: posts each outcome exactly once; `result_video` gets the video ready for
  the post, and `retries` says when a failed post is tried again.

The commands are discord.py extensions in `cogs/`. `import discord` in these modules is
the library (absolute imports); this package is always `bot.discord`.
"""
