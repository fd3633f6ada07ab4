// The report's Print button (no inline handlers: the Content-Security-Policy allows none).
document.getElementById("print")?.addEventListener("click", () => window.print());
