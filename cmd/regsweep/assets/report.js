// Sorts the repository table by the clicked column header (numbers by their raw
// data-value, largest first on the first click; text ascending), ties by name.
(function () {
  "use strict";
  var table = document.getElementById("repos");
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var headers = Array.prototype.slice.call(table.querySelectorAll("th[data-col]"));
  function cmp(x, y) { return x < y ? -1 : x > y ? 1 : 0; }
  function sortBy(th) {
    var col = th.getAttribute("data-col");
    var numeric = th.getAttribute("data-type") === "num";
    var cur = th.getAttribute("aria-sort");
    var dir = cur === "descending" ? "ascending" : cur === "ascending" ? "descending" : (numeric ? "descending" : "ascending");
    headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    function key(row) {
      var v = row.querySelector('td[data-col="' + col + '"]').getAttribute("data-value");
      return numeric ? Number(v) : v;
    }
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.sort(function (a, b) {
      var d = cmp(key(a), key(b));
      if (dir === "descending") { d = -d; }
      return d || cmp(a.getAttribute("data-repo"), b.getAttribute("data-repo"));
    });
    rows.forEach(function (r) { tbody.appendChild(r); });
    table.setAttribute("data-sorted-by", col);
    table.setAttribute("data-sort-dir", dir);
  }
  headers.forEach(function (th) {
    th.tabIndex = 0;
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(th); }
    });
  });
  // ?sort=col1,col2 clicks those headers in turn (used by the tests, handy for links).
  var q = new URLSearchParams(window.location.search).get("sort");
  if (q) {
    q.split(",").forEach(function (c) {
      var th = table.querySelector('th[data-col="' + c + '"]');
      if (th) { th.click(); }
    });
  }
})();
