// The search box of the deliveries log, shared by every page that shows the log (the
// console, and the portal that reuses its script): terms such as `data.invoice_id=inv_42
// response_status=5xx event_id=evt_1` become the query parameters of GET /deliveries
// (docs/API.md, "Delivery search"). A value with spaces is written in double quotes:
// `data.customer.name="Ada Lovelace"`. Only the search's own parameters are accepted, so a
// term cannot override the log's other filters.

const TERM = /^([^\s="]+)=(?:"([^"]*)"|([^\s"]*))(?:\s+|$)/;
const NAMES = new Set(["response_status", "event_id"]);
const ALLOWED = "data.<field>=…, metadata.<field>=…, response_status=5xx or event_id=evt_…";

export class SearchError extends Error {}

const searchable = (name) => NAMES.has(name) || /^(data|metadata)\../.test(name);

// [[name, value], ...] of the box's text; a SearchError says what is wrong with it.
export function searchTerms(text) {
  const terms = [];
  let rest = text.trim();
  while (rest) {
    const match = TERM.exec(rest);
    if (!match) throw new SearchError(`Search: write each term as name=value (${ALLOWED}), near "${rest}".`);
    const [whole, name, quoted, bare] = match;
    if (!searchable(name)) throw new SearchError(`Search: "${name}" is not searchable; use ${ALLOWED}.`);
    terms.push([name, quoted ?? bare]);
    rest = rest.slice(whole.length);
  }
  return terms;
}

// The box, placed in `form` (the log's filters) before its first button.
export function addSearchBox(form) {
  const input = document.createElement("input");
  Object.assign(input, { id: "filter-search", type: "search", autocomplete: "off", spellcheck: false,
                         placeholder: "data.invoice_id=inv_42 response_status=5xx event_id=evt_…" });
  input.setAttribute("aria-describedby", "filter-search-help");
  const label = document.createElement("label");
  label.className = "search";
  label.append("Search ", input);
  const help = document.createElement("small");
  help.id = "filter-search-help";
  help.textContent = `Terms: ${ALLOWED}; all must match.`;
  label.append(help);
  form.insertBefore(label, form.querySelector("button"));
  return input;
}
