"""English: every message the bot says. Values in {braces} are filled in, already escaped."""

MESSAGES: dict[str, str] = {
    "language_name": "English",
    # pushes
    "read_full_text": "Read the full text",
    "read_in_full": "Read in full",  # the statement's Telegraph page (Instant View)
    # /start, /stop
    "start_new": (
        "Subscribed. I will send this chat a summary of every new statement, with the day "
        "counters. /settings chooses sections, silent pushes and the language; /stop "
        "unsubscribes."
    ),
    "start_new_topic": (
        "Subscribed. I will send this topic a summary of every new statement, with the day "
        "counters. /settings chooses this topic's sections, silent pushes and language; /stop "
        "here unsubscribes it."
    ),
    "start_again": "This chat is already subscribed. /stop unsubscribes.",
    "start_again_topic": "This topic is already subscribed. /stop here unsubscribes it.",
    "start_newest": "The newest statement:",
    "stop_done": "Unsubscribed: no more pushes to this chat. /start subscribes again.",
    "stop_not_subscribed": "This chat is not subscribed. /start subscribes it.",
    "stop_done_topic": (
        "Unsubscribed: no more pushes to this topic. The forum's other subscribed topics still "
        "get theirs. /start here subscribes it again."
    ),
    "stop_not_subscribed_topic": "This topic is not subscribed. /start here subscribes it.",
    "stop_other_topics": (
        "This topic is not subscribed, but other topics of this forum are: send /stop in each "
        "of them to stop theirs."
    ),
    "admins_only_subscribe": "Only the group's administrators can subscribe it.",
    "admins_only_unsubscribe": "Only the group's administrators can unsubscribe it.",
    "admins_only_settings": "Only the group's administrators can change its settings.",
    # /latest, /search
    "no_statements": "No statements yet: the feed has not been read. Try again in a few minutes.",
    "latest_usage": "Usage: /latest or /latest N, where N is a whole number from 1 to {max}.",
    "search_usage": "Usage: /search WORDS, for example /search Salisbury.",
    "search_none": "No statement matches “{query}”.",
    # /help
    "help_intro": (
        "I post a short summary of every new official statement, with the day counters."
    ),
    "help_feeds": "Sections: {feeds}.",
    # /settings
    "settings_title": "<b>Settings of this chat</b>",
    "settings_title_topic": "<b>Settings of this topic</b>",
    "settings_sections": "Sections: {sections}",
    "settings_silent_on": "Silent pushes: on (no sound)",
    "settings_silent_off": "Silent pushes: off",
    "settings_language": "Language: {language}",
    "settings_not_subscribed": "This chat is not subscribed: /start subscribes it.",
    "settings_not_subscribed_topic": "This topic is not subscribed: /start here subscribes it.",
    "settings_usage": (
        "To change them:\n"
        "/settings sections {names} (the sections to get)\n"
        "/settings silent on (or off)\n"
        "/settings language {languages}"
    ),
    "settings_sound_on": "🔔 Sound: on",
    "settings_sound_off": "🔕 Sound: off (silent pushes)",
    "settings_stale": "This button is out of date: send /settings again.",
    "settings_saved": "Saved.",
    "settings_unknown_section": "There is no section “{name}”. Sections: {names}.",
    "settings_last_section": "At least one section stays on.",
    "settings_bad_silent": "Usage: /settings silent on, or /settings silent off.",
    "settings_bad_language": "I don't speak “{name}”. Languages: {languages}.",
    "settings_usage_short": "Usage: /settings, /settings sections NAME..., "
    "/settings silent on|off, /settings language {languages}.",
    "settings_pinned_on": "📌 Pinned counters post: on",
    "settings_pinned_off": "📌 Pinned counters post: off",
    "settings_pinned_unavailable": (
        "The pinned counters post is for groups, when the bot offers it."
    ),
    "settings_bad_pinned": "Usage: /settings pinned on, or /settings pinned off.",
    # the daily pinned counters post
    "pinned_no_right": (
        "I cannot pin the counters post: give me the right to pin messages. I keep "
        "the post up to date meanwhile."
    ),
    # errors
    "failure": "Sorry, that did not work. The admins have the details.",
    "unknown_command": "I don't know that command. /help lists what I can do.",
    "console_failure": "That command failed; the log has the details.",
    "sent_privately": "Sent you the answer in a private chat.",
    "open_private_chat": (
        "Admin answers go to a private chat: open one with {who}, send /start, then ask again."
    ),
    # /status (admins)
    "status_title": "<b>Status</b> at {time}",
    "status_subscribers": "Subscribers: {count}",
    "status_statements": "Statements stored: {count}",
    "status_deliveries": "Deliveries pending: {pending}, failed: {failed}",
    "status_corrections": "Corrections sent: {count}",
    "status_sending": "sending “{title}”: {done} of {total}, {rate}/s, about {left} left",
    "duration_seconds": "{n} s",
    "duration_minutes": "{n} min",
    "status_last_poll": "last poll: {ago}",
    "status_last_success": "last success: {ago}",
    "status_last_error": "last error ({count} in a row): {error}",
    "status_moved": "moved to: {url}",
    "status_discovered": "reads the feed the page names: {url}",
    "status_skipped": "items skipped in the last poll ({count}):",
    "ago_never": "never",
    "ago_seconds": "{n} s ago",
    "ago_minutes": "{n} min ago",
    "ago_hours": "{n} h ago",
    # /poll (admins)
    "poll_failed": "failed: {error}",
    "poll_not_modified": "not modified",
    "poll_report": "{new} new, {edited} edited",
    "poll_skipped": "skipped",
}
