// The server extension's REST API: one request helper and the shapes it answers with.
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

// Made once: makeSettings() reads the page config, and its fetch adds the XSRF token and auth.
const settings = ServerConnection.makeSettings();

/** JSON from `{base_url}mlops/api/{path}`; throws an Error whose message is the server's. */
export async function requestAPI<T>(
  path: string,
  init: RequestInit = {}
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, 'mlops', 'api', path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new Error(`cannot reach the Jupyter server: ${error}`);
  }
  const text = await response.text();
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // An HTML error page (e.g. 404 when the server extension is not enabled): say so below.
  }
  if (!response.ok) {
    const message =
      body?.message ??
      (response.status === 404
        ? 'the mlops server extension is not enabled: run `jupyter server extension enable mlops_jupyter` and restart JupyterLab'
        : `${response.status} ${response.statusText}`);
    throw new Error(message);
  }
  return body as T;
}

/** POST a JSON body. */
export function postAPI<T>(path: string, body: unknown): Promise<T> {
  return requestAPI<T>(path, { method: 'POST', body: JSON.stringify(body) });
}

/** `path?k=v&…`, leaving out empty values. */
export function withQuery(
  path: string,
  query: Record<string, string | number | undefined>
): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== '') {
      params.set(key, String(value));
    }
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

export interface IStatus {
  registry: string;
  user: string;
  experiment: string | null;
  counts: Record<string, number>;
}

export interface IFeature {
  name: string;
  version: number;
  dtype: string;
  rows: number;
  created_at: number | string;
  created_by: string;
  description: string | null;
  expectations: {
    rules: number;
    status: 'passed' | 'failed' | 'none';
    failures: unknown[];
  };
}

export interface IExperiment {
  name: string;
  runs: number;
  created_by: string;
}

export interface IRun {
  id: string;
  name: string | null;
  experiment: string;
  status: string;
  user: string;
  start_time: number | string;
  end_time: number | string | null;
  metrics: Record<string, number>;
  params: Record<string, string>;
}

export interface IPage<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface IModel {
  name: string;
  latest_version: number | null;
  aliases: Record<string, number>;
  created_by: string;
}

export interface IModelVersion {
  version: number;
  aliases: string[];
  run_id: string | null;
  metrics: Record<string, number>;
  model_class: string | null;
  created_at: number | string;
  created_by: string;
  description: string | null;
}

export interface IVerdict {
  gate: string;
  passed: boolean;
  message: string;
}

export interface IPromotionCheck {
  model: string;
  alias: string;
  from_version: number | null;
  to_version: number;
  verdicts: IVerdict[];
  passed: boolean;
  changed: boolean;
}

export interface IConversion {
  directory: string;
  steps: {
    name: string;
    cells: number[];
    inputs: string[];
    outputs: string[];
    results: string[];
  }[];
  warnings: { cell: number | null; step: string | null; message: string }[];
}

export interface IItems<T> {
  items: T[];
}
