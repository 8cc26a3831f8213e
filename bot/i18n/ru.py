"""Русский: все сообщения бота. Значения в {скобках} подставляются уже экранированными."""

# ruff: noqa: RUF001 - Cyrillic letters that look Latin are the point of this file

MESSAGES: dict[str, str] = {
    "language_name": "Русский",
    # рассылка
    "read_full_text": "Читать полностью",
    "read_in_full": "Читать целиком",  # страница заявления в Telegraph (Instant View)
    # /start, /stop
    "start_new": (
        "Подписка оформлена. Я буду присылать в этот чат краткое изложение каждого нового "
        "заявления со счётчиками дней. /settings выбирает разделы, тихие уведомления и язык; "
        "/stop отменяет подписку."
    ),
    "start_new_topic": (
        "Подписка оформлена. Я буду присылать в эту тему краткое изложение каждого нового "
        "заявления со счётчиками дней. /settings выбирает разделы, тихие уведомления и язык "
        "этой темы; /stop здесь отменяет её подписку."
    ),
    "start_again": "Этот чат уже подписан. /stop отменяет подписку.",
    "start_again_topic": "Эта тема уже подписана. /stop здесь отменяет её подписку.",
    "start_newest": "Последнее заявление:",
    "stop_done": "Подписка отменена: сюда больше ничего не придёт. /start подписывает снова.",
    "stop_not_subscribed": "Этот чат не подписан. /start подписывает его.",
    "stop_done_topic": (
        "Подписка отменена: в эту тему больше ничего не придёт. Другие подписанные темы форума "
        "получают своё. /start здесь подписывает её снова."
    ),
    "stop_not_subscribed_topic": "Эта тема не подписана. /start здесь подписывает её.",
    "stop_other_topics": (
        "Эта тема не подписана, но другие темы этого форума подписаны: отправьте /stop в каждой "
        "из них, чтобы отменить их подписку."
    ),
    "admins_only_subscribe": "Подписать группу могут только её администраторы.",
    "admins_only_unsubscribe": "Отписать группу могут только её администраторы.",
    "admins_only_settings": "Менять настройки группы могут только её администраторы.",
    # /latest, /search
    "no_statements": (
        "Заявлений пока нет: лента ещё не прочитана. Попробуйте через несколько минут."
    ),
    "latest_usage": "Как использовать: /latest или /latest N, где N — целое число от 1 до {max}.",
    "search_usage": "Как использовать: /search СЛОВА, например /search Солсбери.",
    "search_none": "Ни одно заявление не подходит под «{query}».",
    # /help
    "help_intro": "Я публикую краткое изложение каждого нового официального заявления со "
    "счётчиками дней.",
    "help_feeds": "Разделы: {feeds}.",
    # /settings
    "settings_title": "<b>Настройки этого чата</b>",
    "settings_title_topic": "<b>Настройки этой темы</b>",
    "settings_sections": "Разделы: {sections}",
    "settings_silent_on": "Тихие уведомления: включены (без звука)",
    "settings_silent_off": "Тихие уведомления: выключены",
    "settings_language": "Язык: {language}",
    "settings_not_subscribed": "Этот чат не подписан: /start подписывает его.",
    "settings_not_subscribed_topic": "Эта тема не подписана: /start здесь подписывает её.",
    "settings_usage": (
        "Как изменить:\n"
        "/settings sections {names} (какие разделы получать)\n"
        "/settings silent on (или off)\n"
        "/settings language {languages}"
    ),
    "settings_sound_on": "🔔 Звук: включён",
    "settings_sound_off": "🔕 Звук: выключен (тихие уведомления)",
    "settings_stale": "Эта кнопка устарела: отправьте /settings снова.",
    "settings_saved": "Сохранено.",
    "settings_unknown_section": "Раздела «{name}» нет. Разделы: {names}.",
    "settings_last_section": "Хотя бы один раздел должен остаться включённым.",
    "settings_bad_silent": "Как использовать: /settings silent on или /settings silent off.",
    "settings_bad_language": "Язык «{name}» не поддерживается. Языки: {languages}.",
    "settings_usage_short": "Как использовать: /settings, /settings sections РАЗДЕЛ..., "
    "/settings silent on|off, /settings language {languages}.",
    "settings_pinned_on": "📌 Закреплённые счётчики: включены",
    "settings_pinned_off": "📌 Закреплённые счётчики: выключены",
    "settings_pinned_unavailable": "Закреплённые счётчики есть только в группах, если бот их "
    "предлагает.",
    "settings_bad_pinned": "Как использовать: /settings pinned on или /settings pinned off.",
    # закреплённые счётчики
    "pinned_no_right": (
        "Я не могу закрепить сообщение со счётчиками: дайте мне право закреплять "
        "сообщения. Пока я обновляю его и без этого."
    ),
    # ошибки
    "failure": "Не получилось, извините. Подробности у администраторов.",
    "unknown_command": "Такой команды я не знаю. /help перечисляет, что я умею.",
    "console_failure": "Команда не выполнилась; подробности в журнале.",
    "sent_privately": "Ответ отправлен вам в личный чат.",
    "open_private_chat": (
        "Ответы администраторам приходят в личный чат: откройте его с {who}, отправьте /start "
        "и спросите снова."
    ),
    # /status (администраторы)
    "status_title": "<b>Состояние</b> на {time}",
    "status_subscribers": "Подписчиков: {count}",
    "status_statements": "Заявлений в базе: {count}",
    "status_deliveries": "Доставок в очереди: {pending}, неудачных: {failed}",
    "status_corrections": "Отправлено исправлений: {count}",
    "status_sending": "рассылка «{title}»: {done} из {total}, {rate}/с, осталось около {left}",
    "duration_seconds": "{n} с",
    "duration_minutes": "{n} мин",
    "status_last_poll": "последний опрос: {ago}",
    "status_last_success": "последний успешный: {ago}",
    "status_last_error": "последняя ошибка ({count} подряд): {error}",
    "status_moved": "переехала на: {url}",
    "status_discovered": "читает ленту, указанную страницей: {url}",
    "status_skipped": "пропущено при последнем опросе ({count}):",
    "ago_never": "никогда",
    "ago_seconds": "{n} с назад",
    "ago_minutes": "{n} мин назад",
    "ago_hours": "{n} ч назад",
    # /poll (администраторы)
    "poll_failed": "ошибка: {error}",
    "poll_not_modified": "без изменений",
    "poll_report": "новых: {new}, изменённых: {edited}",
    "poll_skipped": "пропущена",
}
