// Click a column header of a table.sortable to sort by the cells' data-sort values.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("table.sortable").forEach((table) => {
    table.querySelectorAll("th").forEach((th, index) => {
      th.addEventListener("click", () => {
        const numeric = th.dataset.type === "num";
        const asc = !th.classList.contains("asc");
        table.querySelectorAll("th").forEach((h) => h.classList.remove("asc", "desc"));
        th.classList.add(asc ? "asc" : "desc");
        const body = table.tBodies[0];
        const rows = Array.from(body.rows).filter((r) => r.cells.length > index);
        const key = (r) => {
          const v = r.cells[index].dataset.sort ?? r.cells[index].textContent;
          return numeric ? parseFloat(v) : v.toLowerCase();
        };
        rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (asc ? 1 : -1));
        rows.forEach((r) => body.appendChild(r));
      });
    });
  });
  // Filters apply as soon as one is chosen.
  document.querySelectorAll("#census-filters input[type=radio]").forEach((radio) =>
    radio.addEventListener("change", () => radio.form.submit()));
});
