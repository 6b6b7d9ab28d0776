// The label sheet's print button (a script file: the pages' Content-Security-Policy allows no inline handlers).
document.getElementById("print")?.addEventListener("click", () => window.print());
